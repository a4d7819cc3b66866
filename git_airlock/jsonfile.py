"""Write a JSON file so that a reader sees the old content or the new, never half of either."""

from __future__ import annotations

import contextlib
import json
import os


def write_json(path: str, data: object, indent: int | None = None) -> None:
    """Write ``data`` to a fresh temporary file beside ``path`` (mode 0600) and rename it over ``path``.

    A fresh file, not a fixed ``.tmp`` name: two writers never share one, and a leftover
    file with looser permissions is never reused.
    """
    import tempfile

    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=os.path.basename(path) + ".")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(data, handle, indent=indent)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
