"""How an sbx sandbox could reach the user's forge without git-airlock, and what closes each way.

Clone mode copies the host's forge remotes into the clone (their pushes are sent nowhere by
:data:`NEUTRALISE_REMOTES`); sbx forwards the SSH agent and can hold a github secret, either of
which lets the agent push where the network policy allows (``up`` and ``doctor`` warn).
"""

from __future__ import annotations

from git_airlock.plan import Runner, Step

SBX = "sbx"
"""The Docker Sandboxes CLI."""

NO_PUSH_URL = "/dev/null/git-airlock-no-push"
"""A push URL that can never work: nothing can exist below /dev/null, and no network is tried."""
NEUTRALISE_REMOTES = (
    "set -e; "
    f'for remote in $(git remote); do git config --replace-all "remote.$remote.pushurl" {NO_PUSH_URL}; done; '
    f'git config --replace-all url.{NO_PUSH_URL}/.pushInsteadOf ""'
)
"""Run in the clone: every remote pushes to NO_PUSH_URL, and an empty ``pushInsteadOf`` prefix
rewrites any URL given to ``git push`` directly to one below it. A fixed script: nothing from the
host or the sandbox is interpolated into it."""

SSH_FORWARDING_SETTING = "ssh.agentForwardingEnabled"
"""Machine-wide, default true; no per-sandbox switch is documented
(https://docs.docker.com/ai/sandboxes/cli/local/settings/#sshagentforwardingenabled)."""


def is_local_url(url: str) -> bool:
    """A file:// URL or a filesystem path: clone mode does not copy such remotes into the clone.

    git's rule: a URL without ``://`` is scp-like (``host:path``, remote) only when a colon comes
    before the first slash.
    """
    if url.startswith("file://"):
        return True
    if "://" in url:
        return False
    colon, slash = url.find(":"), url.find("/")
    return colon < 0 or (0 <= slash < colon)


def forge_remotes(repo_root: str) -> list[str]:
    """The host's remotes that clone mode copies into the clone.

    "The CLI copies Git remotes from your host repository, such as `origin` and `upstream`, into
    the in-sandbox clone. Local-path remotes, such as `file://` URLs and filesystem paths, aren't
    copied" (https://docs.docker.com/ai/sandboxes/cli/git/#sandbox-remote-behavior).
    """
    from git_airlock.gitcmd import Git

    names = []
    for key, url in Git(repo_root, safe=False).config_entries(r"^remote\..*\.url$"):
        name = key[len("remote.") : -len(".url")]
        if not is_local_url(url) and name not in names:
            names.append(name)
    return names


def ssh_forwarding_risk(runner: Runner) -> str | None:
    """`sbx settings get KEY` "prints only the effective value"
    (https://docs.docker.com/ai/sandboxes/cli/local/settings/#view-settings); a release without
    `settings` fails, and forwarding is on by default, so anything but "false" is a risk."""
    result = runner.query(Step((SBX, "settings", "get", SSH_FORWARDING_SETTING)))
    if result is None or (result.returncode == 0 and result.stdout.strip() == "false"):
        return None
    return (
        "sbx forwards your SSH agent into every sandbox (ssh.agentForwardingEnabled, on by default; sbx has no "
        "per-sandbox switch), so the agent can push over SSH where the network policy lets it: "
        f"`sbx settings set {SSH_FORWARDING_SETTING} false` then `sbx daemon restart` turns it off"
    )


def github_secret_risk(runner: Runner, name: str | None) -> str | None:
    """`sbx secret ls` prints ``SCOPE TYPE NAME SECRET`` rows, the scope ``(global)`` or a sandbox
    (https://docs.docker.com/ai/sandboxes/cli/credentials/#list-and-remove-secrets)."""
    result = runner.query(Step((SBX, "secret", "ls")))
    if result is None or result.returncode != 0:
        return None
    scopes = {"(global)", name}
    for line in result.stdout.splitlines()[1:]:
        fields = line.split()
        if len(fields) >= 3 and fields[0] in scopes and fields[2] == "github":
            scope = "every sandbox" if fields[0] == "(global)" else "this sandbox"
            return (
                f"a github secret is stored for {scope}: sbx's proxy adds your GitHub token to the sandbox's "
                "requests to github.com, so the agent can push there when the network policy allows GitHub "
                f"(`sbx secret rm github{'' if fields[0] == '(global)' else ' --sandbox ' + fields[0]}` removes it)"
            )
    return None
