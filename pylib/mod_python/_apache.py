"""mod_python._apache: the few internals 3.5 code and its test suite reach.

``_global_lock(server, key, index=-1)`` and friends are cross-process locks (flock on files
under the system temp directory), as mod_python's were across Apache's children.
"""
from __future__ import annotations

import fcntl
import os
import tempfile
import threading
import zlib
from typing import Any

from .util import parse_qs, parse_qsl  # noqa: F401  (3.5 exported them here too)

_NLOCKS = 32
_dir = os.path.join(tempfile.gettempdir(), f"modpy-global-locks-{os.getuid()}")
_held: dict[int, int] = {}
_thread_locks = [threading.Lock() for _ in range(_NLOCKS)]


def _index(key: object, index: int) -> int:
    if index >= 0:
        return index % _NLOCKS
    # Any key, as mod_python hashed any object; a stable hash (str() then CRC-32), because
    # hash() of a str differs between Apache's children.
    return zlib.crc32(("" if key is None else str(key)).encode()) % _NLOCKS


def _fd(i: int) -> int:
    os.makedirs(_dir, mode=0o700, exist_ok=True)
    return os.open(os.path.join(_dir, f"lock{i}"), os.O_CREAT | os.O_RDWR, 0o600)


def _global_lock(server: Any, key: object, index: int = -1) -> None:
    i = _index(key, index)
    _thread_locks[i].acquire()
    fd = _fd(i)
    fcntl.flock(fd, fcntl.LOCK_EX)
    _held[i] = fd


def _global_trylock(server: Any, key: object, index: int = -1) -> bool:
    i = _index(key, index)
    if not _thread_locks[i].acquire(blocking=False):
        return False
    fd = _fd(i)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        _thread_locks[i].release()
        return False
    _held[i] = fd
    return True


def _global_unlock(server: Any, key: object, index: int = -1) -> None:
    i = _index(key, index)
    fd = _held.pop(i, None)
    if fd is not None:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)
        _thread_locks[i].release()
