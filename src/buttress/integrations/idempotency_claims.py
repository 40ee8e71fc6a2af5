"""Which idempotency keys are being run right now, on one host, without writing to a database.

A key is claimed with a non-blocking POSIX record lock on one byte of a lock file (the store's
file name plus ``-claims``), at an offset made from a 62-bit hash of the key.  Other processes
that try the same byte see the key as running; the kernel drops the lock when its process dies,
so a crashed server's keys are free at once, with no timeout to wait out.  Record locks belong to
the process, not to the file descriptor, so a process also keeps the keys it runs in a dict of its
own: a second claim from the same process would otherwise succeed.

Two rules POSIX imposes on record locks shape this module:

* closing *any* descriptor of the file drops *all* the process's locks on it, so there is one
  :class:`ClaimFile` per lock file per process, shared by every store on that file, and its
  descriptor stays open for the life of the process;
* a forked child holds none of its parent's locks, so it forgets the parent's claims
  (``os.register_at_fork``).

Two different keys whose hashes meet (one chance in 2**62 per pair of keys running at once) are
answered 409 while the other runs: a false "running", never a second execution.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import os
import threading
from pathlib import Path

__all__ = ["ClaimFile", "claim_file"]

_BUSY = (errno.EACCES, errno.EAGAIN)


class ClaimFile:
    """The lock file of one store path, for this process: :meth:`claim` and :meth:`free`."""

    __slots__ = ("_fd", "_held", "_lock", "path")

    def __init__(self, path: str) -> None:
        self.path = path
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        self._held: dict[str, str] = {}  # key -> the fingerprint of the request running it
        self._lock = threading.Lock()

    @staticmethod
    def offset(key: str) -> int:
        """The byte of the lock file that stands for ``key``."""
        digest = hashlib.blake2b(key.encode("utf-8", "surrogatepass"), digest_size=8).digest()
        return int.from_bytes(digest, "big") >> 2  # below 2**62: far from the largest offset

    def claim(self, key: str, fingerprint: str) -> str | None:
        """Claim ``key``: ``None`` when it is now ours; else the fingerprint of the request of
        this process running it, or ``""`` when another process runs it (its payload unknown)."""
        with self._lock:
            running = self._held.get(key)
            if running is not None:
                return running
            try:
                fcntl.lockf(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, self.offset(key))
            except OSError as e:
                if e.errno in _BUSY:
                    return ""
                raise
            self._held[key] = fingerprint
            return None

    def free(self, key: str) -> None:
        """Give ``key`` up (after its response is stored, or when it may be run again)."""
        with self._lock:
            if self._held.pop(key, None) is not None:
                fcntl.lockf(self._fd, fcntl.LOCK_UN, 1, self.offset(key))

    def holds(self, key: str) -> bool:
        with self._lock:
            return key in self._held

    def _forget(self) -> None:
        # In a forked child: the locks stayed with the parent, so must the claims.
        self._held = {}
        self._lock = threading.Lock()


_files: dict[str, ClaimFile] = {}
_files_lock = threading.Lock()


def claim_file(store_path: str | Path) -> ClaimFile:
    """The process's one :class:`ClaimFile` for the store at ``store_path``."""
    path = os.path.realpath(f"{store_path}-claims")
    with _files_lock:
        found = _files.get(path)
        if found is None:
            found = _files[path] = ClaimFile(path)
        return found


def _after_fork() -> None:
    global _files_lock
    _files_lock = threading.Lock()
    for f in _files.values():
        f._forget()


os.register_at_fork(after_in_child=_after_fork)
