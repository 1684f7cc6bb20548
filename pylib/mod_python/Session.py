"""mod_python.Session (the 3.5 API): a dict saved between requests, found again by a cookie
(``pysid``; signed when a secret is given).

    sess = Session.FileSession(req, secret="...")      # or Session.Session(req)
    sess["user"] = "alice"; sess.save()

DbmSession keeps them all in one dbm file. FileSession keeps each session in a file (``PythonOption mod_python.file_session.database_directory``,
default ``<tempdir>/mp_sess``), locked with flock while a request holds it; MemorySession keeps
them in the process (each Apache child has its own). A session id that is not 32 hex digits
(path characters, a forged or unsigned cookie) is never used to find a file: the request gets a
new session and the attempt is logged.
"""
from __future__ import annotations

import fcntl
import os
import pickle
import re
import secrets
import tempfile
import threading
import time
from typing import Any, Optional

from . import Cookie, _apache, apache

COOKIE_NAME = "pysid"
DFT_TIMEOUT = 30 * 60
_SID = re.compile(r"^[0-9a-f]{32}$")


def _new_sid() -> str:
    return secrets.token_hex(16)


class BaseSession(dict):
    def __init__(self, req: Any, sid: Optional[str] = None, secret: Optional[str] = None,
                 lock: int = 1, timeout: int = 0) -> None:
        super().__init__()
        self._req, self._secret, self._lock = req, secret, lock
        self._new = True
        self._created = self._accessed = time.time()
        self._timeout = timeout or DFT_TIMEOUT
        self._locked = False
        opts = req.get_options() if hasattr(req, "get_options") else {}
        self._cookie_name = opts.get("mod_python.session.cookie_name", opts.get("session_cookie_name", COOKIE_NAME))
        if not sid:
            sid = self._sid_from_cookie()
        elif not _SID.match(sid):
            sid = None
        self._sid = sid or _new_sid()
        if sid:
            if lock:
                self.lock()
            if self.load():
                self._new = False
        if self._new:
            if lock and not self._locked:
                self.lock()
            self._created = time.time()
            Cookie.add_cookie(self._req, self.make_cookie())
        self._accessed = time.time()
        req.register_cleanup(self._cleanup_request)

    # -- the cookie --

    def _sid_from_cookie(self) -> Optional[str]:
        if self._secret:
            c = Cookie.get_cookie(self._req, self._cookie_name, Cookie.SignedCookie, secret=self._secret)
            if c is not None and not isinstance(c, Cookie.SignedCookie):
                self._req.log_error(f"mod_python.Session: ignored an incorrectly signed {self._cookie_name} cookie",
                                    apache.APLOG_NOTICE)
                return None
        else:
            c = Cookie.get_cookie(self._req, self._cookie_name)
        if c is None:
            return None
        sid = str(c.value)
        if not _SID.match(sid):
            self._req.log_error(f"mod_python.Session: ignored a malformed session id {sid[:80]!r}", apache.APLOG_NOTICE)
            return None
        return sid

    def make_cookie(self) -> Cookie.Cookie:
        """The session's cookie, not yet added to the response. As 3.5's: no httponly flag,
        domain= when an application domain is set."""
        opts = self._req.get_options()
        path = opts.get("mod_python.session.application_path", opts.get("ApplicationPath", "/"))
        if self._secret:
            c: Cookie.Cookie = Cookie.SignedCookie(self._cookie_name, self._sid, self._secret, path=path)
        else:
            c = Cookie.Cookie(self._cookie_name, self._sid, path=path)
        c.domain = opts.get("mod_python.session.application_domain")
        return c

    # -- the 3.5 methods --

    def id(self) -> str:
        return self._sid

    def is_new(self) -> bool:
        return self._new

    def created(self) -> float:
        return self._created

    def last_accessed(self) -> float:
        return self._accessed

    def timeout(self) -> int:
        return self._timeout

    def set_timeout(self, secs: int) -> None:
        self._timeout = secs

    def invalidate(self) -> None:
        c = self.make_cookie()  # the same path and domain, or the client keeps it
        c.expires = 0
        Cookie.add_cookie(self._req, c)
        self.delete()
        self._invalid = True

    def load(self) -> bool:
        data = self.do_load()
        if data is None:
            return False
        if data["_accessed"] + data["_timeout"] < time.time():
            self.do_delete()
            return False
        self._created, self._accessed, self._timeout = data["_created"], data["_accessed"], data["_timeout"]
        self.update(data["_data"])
        return True

    def save(self) -> None:
        if getattr(self, "_invalid", False):
            return
        self.do_save({"_data": dict(self), "_created": self._created, "_accessed": time.time(),
                      "_timeout": self._timeout})

    def delete(self) -> None:
        self.do_delete()
        self.clear()

    def lock(self) -> None:
        self._locked = True

    def unlock(self) -> None:
        self._locked = False

    def cleanup(self) -> None:
        """Removes expired sessions (called now and then)."""

    def _cleanup_request(self, *args: Any) -> None:
        if self._locked:
            self.unlock()

    # -- storage, per class --

    def do_load(self) -> Optional[dict[str, Any]]:
        raise NotImplementedError

    def do_save(self, data: dict[str, Any]) -> None:
        raise NotImplementedError

    def do_delete(self) -> None:
        raise NotImplementedError


class FileSession(BaseSession):
    def __init__(self, req: Any, sid: Optional[str] = None, secret: Optional[str] = None,
                 timeout: int = 0, lock: int = 1, fast_cleanup: bool = True, verify_cleanup: bool = True) -> None:
        opts = req.get_options()
        self._dir = opts.get("mod_python.file_session.database_directory",
                             opts.get("mod_python.session.database_directory",
                                      opts.get("session_directory", os.path.join(tempfile.gettempdir(), "mp_sess"))))
        os.makedirs(self._dir, mode=0o700, exist_ok=True)
        self._lockfd: Optional[int] = None
        super().__init__(req, sid, secret, lock, timeout)

    def _path(self, suffix: str = "") -> str:
        # The id is 32 hex digits (checked before any use): it cannot leave the directory.
        assert _SID.match(self._sid)
        d = os.path.join(self._dir, self._sid[:2])
        os.makedirs(d, mode=0o700, exist_ok=True)
        return os.path.join(d, self._sid + suffix)

    def lock(self) -> None:
        if self._lockfd is None:
            self._lockfd = os.open(self._path(".lock"), os.O_CREAT | os.O_RDWR, 0o600)
            fcntl.flock(self._lockfd, fcntl.LOCK_EX)
        self._locked = True

    def unlock(self) -> None:
        if self._lockfd is not None:
            fcntl.flock(self._lockfd, fcntl.LOCK_UN)
            os.close(self._lockfd)
            self._lockfd = None
        self._locked = False

    def do_load(self) -> Optional[dict[str, Any]]:
        try:
            with open(self._path(), "rb") as f:
                return pickle.load(f)
        except (OSError, EOFError, pickle.UnpicklingError):
            return None

    def do_save(self, data: dict[str, Any]) -> None:
        path = self._path()
        tmp = path + ".tmp"
        with open(tmp, "wb") as f:
            pickle.dump(data, f)
        os.replace(tmp, path)

    def do_delete(self) -> None:
        try:
            os.unlink(self._path())
        except OSError:
            pass


_memory: dict[str, dict[str, Any]] = {}
_memory_locks: dict[str, threading.Lock] = {}
_memory_guard = threading.Lock()


class MemorySession(BaseSession):
    def __init__(self, req: Any, sid: Optional[str] = None, secret: Optional[str] = None,
                 timeout: int = 0, lock: int = 1) -> None:
        super().__init__(req, sid, secret, lock, timeout)

    def lock(self) -> None:
        with _memory_guard:
            lk = _memory_locks.setdefault(self._sid, threading.Lock())
        if not self._locked:
            lk.acquire()
        self._locked = True

    def unlock(self) -> None:
        if self._locked:
            _memory_locks[self._sid].release()
        self._locked = False

    def do_load(self) -> Optional[dict[str, Any]]:
        data = _memory.get(self._sid)
        return None if data is None else {**data, "_data": dict(data["_data"])}

    def do_save(self, data: dict[str, Any]) -> None:
        _memory[self._sid] = data

    def do_delete(self) -> None:
        _memory.pop(self._sid, None)


class DbmSession(BaseSession):
    """Sessions in one dbm file shared by Apache's children (``PythonOption
    mod_python.dbm_session.database_filename``, default ``<tempdir>/mp_sess.dbm``). Every access
    to the file holds an flock on ``<file>.lock``; a session being used is locked as in
    FileSession. Expired sessions are removed now and then (about one request in 1000)."""

    def __init__(self, req: Any, dbm: Optional[str] = None, sid: Optional[str] = None,
                 secret: Optional[str] = None, dbmtype: Any = None, timeout: int = 0,
                 lock: int = 1) -> None:
        opts = req.get_options()
        self._dbmfile = dbm or opts.get("mod_python.dbm_session.database_filename",
                                        opts.get("mod_python.session.database_filename",
                                                 opts.get("session_dbm", os.path.join(
                                                     tempfile.gettempdir(), "mp_sess.dbm"))))
        self._dbmtype = dbmtype
        super().__init__(req, sid, secret, lock, timeout)
        if secrets.randbelow(1000) == 0:
            self.cleanup()

    def _db(self, flag: str) -> Any:
        import dbm
        return (self._dbmtype or dbm).open(self._dbmfile, flag, 0o600)

    def _locked_file(self) -> Any:
        """A context manager: the flock that serialises every use of the dbm file."""
        class _Held:
            def __enter__(inner) -> None:
                inner.fd = os.open(self._dbmfile + ".lock", os.O_CREAT | os.O_RDWR, 0o600)
                fcntl.flock(inner.fd, fcntl.LOCK_EX)

            def __exit__(inner, *exc: object) -> None:
                os.close(inner.fd)  # releases the flock
        return _Held()

    # A session in use holds one of mod_python's global locks, chosen by its id (as 3.5 did):
    # a fixed set of lock files, nothing left behind per session.
    def lock(self) -> None:
        if not self._locked:
            _apache._global_lock(self._req.server, self._sid)
        self._locked = True

    def unlock(self) -> None:
        if self._locked:
            _apache._global_unlock(self._req.server, self._sid)
        self._locked = False

    def do_load(self) -> Optional[dict[str, Any]]:
        with self._locked_file():
            try:
                with self._db("c") as db:
                    raw = db.get(self._sid.encode())
            except OSError:
                return None
        try:
            return None if raw is None else pickle.loads(raw)
        except (pickle.UnpicklingError, EOFError):
            return None

    def do_save(self, data: dict[str, Any]) -> None:
        with self._locked_file(), self._db("c") as db:
            db[self._sid.encode()] = pickle.dumps(data)

    def do_delete(self) -> None:
        with self._locked_file(), self._db("c") as db:
            try:
                del db[self._sid.encode()]
            except KeyError:
                pass

    def cleanup(self) -> None:
        now = time.time()
        with self._locked_file(), self._db("c") as db:
            for key in list(db.keys()):
                try:
                    data = pickle.loads(db[key])
                    expired = data["_accessed"] + data["_timeout"] < now
                except Exception:  # noqa: BLE001 - an unreadable record goes too
                    expired = True
                if expired:
                    del db[key]


def Session(req: Any, sid: Optional[str] = None, secret: Optional[str] = None, timeout: int = 0, lock: int = 1) -> BaseSession:
    """The session class chosen by ``PythonOption mod_python.session.session_type`` (FileSession
    by default: Apache's children are separate processes)."""
    opts = req.get_options()
    kind = opts.get("mod_python.session.session_type", opts.get("session", "FileSession"))
    cls = {"FileSession": FileSession, "MemorySession": MemorySession,
           "DbmSession": DbmSession}.get(kind)
    if cls is None:
        raise ValueError(f"unknown mod_python.session.session_type {kind!r}")
    return cls(req, sid=sid, secret=secret, timeout=timeout, lock=lock)
