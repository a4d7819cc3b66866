"""bubblewrap engine: Linux namespaces, no VM, no daemon.

The agent works in a private clone of the host repository, in a sandbox that
sees the system read-only, the host repository read-only, its clone and its
own HOME; it is uid 1000 there with no capability, under a seccomp filter,
with no network but the egress gate. The host's ``sandbox-<name>`` remote
points at the clone, so fetch, diff, review, merge, log and the hook work
exactly as with sbx; whatever the host runs over the clone runs in a sandbox
too. The pieces:

- ``layout``: where a sandbox lives on the host, its id and owning repository;
- ``confine``: what every sandbox shares (user, namespaces, filter, devices);
- ``seccomp``: the filter program; ``overlay``: the copy-on-write working tree;
- ``argv``: the agent's command line; ``gate``: its egress gate's wiring;
- ``clone``: the host's git work on the clone; ``home``: writing into its HOME;
- ``start``: creating it, and what is refused before its agent starts;
- ``processes``: finding and stopping it; ``engine``: the Engine itself.
"""

from git_airlock.engines.bwrap.engine import BwrapEngine

__all__ = ["BwrapEngine"]
