"""The egress gate for the bwrap engine: a host-side proxy that a sandbox with no network reaches
through a Unix socket bound into it, and that lets through only the hosts the policy allows."""
