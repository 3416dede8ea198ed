"""File modes: outputs written through a temporary file honour the umask like any other.

``tempfile.mkstemp`` creates files with mode 0600 and ``tempfile.mkdtemp`` folders with 0700,
whatever the umask; renamed into place, they would keep those modes, and other users of a
shared project folder (a cluster's group) could not read them. :func:`honour_umask` gives
such a path the mode an ordinary ``open`` or ``mkdir`` would have given it.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

_UMASK_LOCK = threading.Lock()


def current_umask() -> int:
    """The process' umask, read without changing it where the system allows.

    Linux exposes it in ``/proc/self/status``; elsewhere it is read by setting and restoring
    it, under a lock.

    Example:
        >>> 0 <= current_umask() <= 0o777
        True
    """
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    with _UMASK_LOCK:
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


def honour_umask(path: Path, *, directory: bool = False) -> None:
    """Set ``path``'s mode to what ``open`` (0666) or ``mkdir`` (0777) gives under the umask.

    Example:
        >>> honour_umask(Path("cache/.entry.tmp"))  # doctest: +SKIP
    """
    base = 0o777 if directory else 0o666
    os.chmod(path, base & ~current_umask())
