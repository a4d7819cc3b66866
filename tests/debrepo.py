"""A Debian package repository on 127.0.0.1, standing in for deb.debian.org in the tests.

One small package, ``airlock-hello``, built with ``dpkg-deb``: a program that prints a line, and a
maintainer script that does what real packages do as root (adds a system user, gives it a folder
under /var/lib, writes a configuration file under /etc). The indexes are made by ``apt-ftparchive``
(a flat repository, used with ``[trusted=yes]``), and a plain HTTP server serves them, recording
every path asked for.
"""

from __future__ import annotations

import http.server
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

PACKAGE = "airlock-hello"
GREETING = "hello from a package"
HOST = "deb.airlock.test"
"""The name the sandbox's apt asks for; the gate dials 127.0.0.1 for it (AIRLOCK_EGRESS_RESOLVE)."""

PROGRAM = f"""\
#!/bin/sh
echo "{GREETING}"
"""
POSTINST = f"""\
#!/bin/sh
set -e
if [ "$1" = configure ]; then
  getent passwd {PACKAGE} >/dev/null || useradd --system --no-create-home --shell /usr/sbin/nologin {PACKAGE}
  mkdir -p /var/lib/{PACKAGE}
  chown {PACKAGE}: /var/lib/{PACKAGE}
  echo "greeting = {GREETING}" > /etc/{PACKAGE}.conf
fi
"""


def build(folder: Path) -> Path:
    """The package and the repository's indexes in ``folder``; returns the folder."""
    root = folder / "build"
    (root / "DEBIAN").mkdir(parents=True)
    (root / "usr" / "bin").mkdir(parents=True)
    control = (
        f"Package: {PACKAGE}\nVersion: 1.0\nArchitecture: all\nMaintainer: git-airlock tests <t@example.invalid>\n"
        "Description: a package the sandbox installs for real\n"
    )
    (root / "DEBIAN" / "control").write_text(control)
    for path, text in ((root / "DEBIAN" / "postinst", POSTINST), (root / "usr" / "bin" / PACKAGE, PROGRAM)):
        path.write_text(text)
        path.chmod(0o755)
    repo = folder / "repo"
    repo.mkdir()
    subprocess.run(
        ["dpkg-deb", "--root-owner-group", "--build", str(root), str(repo / f"{PACKAGE}_1.0_all.deb")],
        check=True,
        capture_output=True,
    )
    packages = subprocess.run(["apt-ftparchive", "packages", "."], cwd=repo, check=True, capture_output=True).stdout
    (repo / "Packages").write_bytes(packages)
    release = subprocess.run(["apt-ftparchive", "release", "."], cwd=repo, check=True, capture_output=True).stdout
    (repo / "Release").write_bytes(release)
    folder.chmod(0o755)
    return repo


@dataclass
class Served:
    port: int
    asked: list[str] = field(default_factory=list)
    """Every path a client asked for, in order."""

    @property
    def source_line(self) -> str:
        """The line of sources.list that points apt at the stand-in."""
        return f"deb [trusted=yes] http://{HOST}:{self.port}/ ./"


@contextmanager
def serve(repo: Path) -> Iterator[Served]:
    """Serve ``repo`` over HTTP on 127.0.0.1 while the block runs."""
    served = Served(0)

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs) -> None:
            super().__init__(*args, directory=str(repo), **kwargs)

        def do_GET(self) -> None:
            served.asked.append(self.path)
            super().do_GET()

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    served.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield served
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
