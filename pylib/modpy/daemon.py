"""``python -m modpy.daemon``: one process of a mod_py WSGI daemon process group.

mod_py's monitor (a Python-free process forked by the Apache parent) execs this module in the
group's Python, after it has switched user, group and root directory, with the group's
listening UNIX socket on the file descriptor named by ``MODPY_DAEMON_FD`` and the settings in
``MODPY_DAEMON_*`` environment variables. Apache children connect, prove they know the
group's secret, and send requests in the frames of ``src/daemon/protocol.rs``; this process
runs the WSGI application and streams the response back.

Threads: one epoll set holds the listening socket and every idle connection, each armed for
one event at a time. One of the ``threads`` worker threads, the leader, waits on it and serves
request after request; the others stand by until a request outlasts a short timer (it blocks,
or is slow), when one of them takes the lead (``Worker.lead``). An idle connection never holds
a thread.
"""
from __future__ import annotations

import atexit
import errno
import faulthandler
import logging
import os
import re
import select
import signal
import socket
import stat
import struct
import sys
import threading
import time
import traceback
from types import TracebackType
from typing import TYPE_CHECKING, Any, Callable, Iterable, Optional, Union

from . import _wsgi

try:  # the hot path in Rust (native/); the pure-Python Loop below where it does not load
    from . import _native
except ImportError:
    _native = None  # type: ignore[assignment]

if TYPE_CHECKING:
    # The WSGI layer works with either loop's connection and response (the same methods).
    AnyConn = Union["Connection", _native.Conn]
    AnyResponse = Union["Response", _native.Response]

MAGIC = b"MODPYD\0\0"
VERSION = 1
SECRET_LEN = 32
MAX_FRAME = 1 << 20
MAX_CHUNK = 256 * 1024

HELLO, HELLO_OK = 1, 2
REQUEST, READ, BODY, BODY_ERROR = 10, 11, 12, 13
START, DATA, END, ABORT = 20, 21, 22, 23
EXIT_INACTIVE = 4  # see src/daemon/monitor.rs
# A request running longer than this (and at most twice as long) lets another thread take the
# next ones (Worker.lead).
PROMOTE_AFTER = 0.001
KINDS = {HELLO, HELLO_OK, REQUEST, READ, BODY, BODY_ERROR, START, DATA, END, ABORT}

_header = struct.Struct(">BBHI")

HOP_BY_HOP = {
    "connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailers",
    "transfer-encoding", "upgrade",
}

log = logging.getLogger("modpy.daemon")


class _NoWait:
    """recv/send/epoll_ctl that keep the GIL: libc called through ctypes.PyDLL (which does not
    release the GIL), non-blocking, for the calls that never wait: reading a frame epoll said
    is there, writing a response the socket buffer has room for, re-arming a connection.

    Why: every socket method releases the GIL, and a worker thread waiting for it takes it
    then (a hand-over between threads, often across CPUs). With 8 threads and several
    requests in flight that happened several times per request, and cost more CPU than the
    request itself. Keeping the GIL, a thread lets go of it only when it waits for work
    (epoll) or when a call would block (then the socket methods are used). None of the
    three is available (no ctypes, another platform): the socket methods are used throughout.
    """

    def __init__(self) -> None:
        import ctypes

        libc = ctypes.PyDLL(None, use_errno=True)
        self.get_errno = ctypes.get_errno
        self.string_at = ctypes.string_at
        self.recv = libc.recv
        self.recv.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
        self.recv.restype = ctypes.c_ssize_t
        self.send = libc.send
        self.send.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_size_t, ctypes.c_int]
        self.send.restype = ctypes.c_ssize_t
        self.epoll_ctl = libc.epoll_ctl
        self.epoll_ctl.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_void_p]
        self.epoll_ctl.restype = ctypes.c_int

        # struct epoll_event: events, then a 64-bit data union whose int member select.epoll
        # reads back as the fd; packed on x86-64 only.
        fields = [("events", ctypes.c_uint32), ("data", ctypes.c_uint64)]
        if os.uname().machine == "x86_64":
            class EpollEvent(ctypes.Structure):
                _pack_ = 1
                _fields_ = fields
        else:
            class EpollEvent(ctypes.Structure):  # type: ignore[no-redef]
                _fields_ = fields
        self.fd_shift = 0 if sys.byteorder == "little" else 32

        self.EpollEvent = EpollEvent

        class Timespec(ctypes.Structure):
            _fields_ = [("sec", ctypes.c_long), ("nsec", ctypes.c_long)]

        class Itimerspec(ctypes.Structure):
            _fields_ = [("interval", Timespec), ("value", Timespec)]

        self.Itimerspec = Itimerspec
        self.timerfd_create = libc.timerfd_create
        self.timerfd_create.argtypes = [ctypes.c_int, ctypes.c_int]
        self.timerfd_create.restype = ctypes.c_int
        self.timerfd_settime = libc.timerfd_settime
        self.timerfd_settime.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p]
        self.timerfd_settime.restype = ctypes.c_int
        self.byref = ctypes.byref
        self.buf = ctypes.create_string_buffer(65536)
        self.buf_lock = threading.Lock()
        self.MSG_DONTWAIT = 0x40
        self.MSG_NOSIGNAL = 0x4000

    def try_recv(self, fd: int, n: int) -> Optional[bytes]:
        """Up to n bytes (at most 64 KiB) if some are there now; None if the call would
        block; b"" at end of file. OSError on an error."""
        n = min(n, 65536)
        with self.buf_lock:
            got = self.recv(fd, self.buf, n, self.MSG_DONTWAIT)
            if got >= 0:
                return self.string_at(self.buf, got)
        self.raise_unless_would_block()
        return None

    def try_send(self, fd: int, data: bytes) -> int:
        """How many bytes of data went out now (0 if the call would block)."""
        sent: int = self.send(fd, data, len(data), self.MSG_DONTWAIT | self.MSG_NOSIGNAL)
        if sent >= 0:
            return sent
        self.raise_unless_would_block()
        return 0

    def timer(self) -> "Timer":
        fd = self.timerfd_create(time.CLOCK_MONOTONIC, os.O_NONBLOCK | os.O_CLOEXEC)
        if fd < 0:
            raise self.error()
        return Timer(self, fd)

    def rearm(self, epfd: int, fd: int, events: int) -> None:
        ev = self.EpollEvent(events, fd << self.fd_shift)
        if self.epoll_ctl(epfd, 3, fd, self.byref(ev)) != 0:  # EPOLL_CTL_MOD
            raise self.error()

    def error(self) -> OSError:
        """The failed call's errno as an OSError (ECONNRESET gives ConnectionResetError...)."""
        err = self.get_errno()
        return OSError(err, os.strerror(err))

    def raise_unless_would_block(self) -> None:
        """After a failed non-blocking call: returns if it only would have blocked."""
        if self.get_errno() not in (errno.EAGAIN, errno.EWOULDBLOCK, errno.EINTR):
            raise self.error()


class Timer:
    """A one-shot CLOCK_MONOTONIC timerfd (time.monotonic()'s clock), set with the GIL held.

    Setting it costs a system call, and up to 9 µs on a VM: a timer due sooner than the
    scheduler's next tick reprograms the CPU's timer device, which traps to the hypervisor.
    So Worker sets it once per millisecond or so, not once per request."""

    TFD_TIMER_ABSTIME = 1

    def __init__(self, nowait: _NoWait, fd: int) -> None:
        self.fd = fd
        self.nowait = nowait
        self.settime = nowait.timerfd_settime
        self.byref = nowait.byref
        self.spec = nowait.Itimerspec((0, 0), (0, 0))
        self.deadline: Optional[float] = None  # when it is due; None: not set (or consumed)

    def set_at(self, deadline: float) -> None:
        """Sets it to fire at `deadline` (a time.monotonic() value); replaces any setting."""
        ns = max(1, int(deadline * 1e9))
        self.spec.value.sec, self.spec.value.nsec = divmod(ns, 1_000_000_000)
        if self.settime(self.fd, self.TFD_TIMER_ABSTIME, self.byref(self.spec), None) != 0:
            raise self.nowait.error()
        self.deadline = deadline

    def consume(self) -> bool:
        """True if it fired since it was last set (setting it again resets that), and reads
        that expiry; False if not (EAGAIN)."""
        try:
            os.read(self.fd, 8)
        except BlockingIOError:
            return False
        self.deadline = None
        return True


try:
    _nowait: Optional[_NoWait] = _NoWait() if sys.platform.startswith("linux") and sys.implementation.name == "cpython" else None
except (ImportError, OSError, AttributeError):
    _nowait = None


class ProtocolError(Exception):
    """A malformed frame: the connection is closed, nothing else."""


class WSGIError(Exception):
    """The application broke PEP 3333."""


def _native_log(level: int, msg: str, exc: Optional[BaseException]) -> None:
    log.log(level, "%s", msg, exc_info=exc)


if _native is not None:
    _native.setup(ProtocolError, WSGIError, _native_log)


class Settings:
    """The group's settings, from the environment the monitor set."""

    def __init__(self, env: dict[str, str]) -> None:
        self.group = env.get("MODPY_DAEMON_GROUP", "?")
        self.fd = int(env.get("MODPY_DAEMON_FD", "3"))
        self.secret = bytes.fromhex(env.get("MODPY_DAEMON_SECRET", ""))
        self.threads = max(1, int(env.get("MODPY_DAEMON_THREADS", "15")))
        self.maximum_requests = int(env.get("MODPY_DAEMON_MAXIMUM_REQUESTS", "0"))
        self.inactivity_timeout = float(env.get("MODPY_DAEMON_INACTIVITY_TIMEOUT", "0"))
        self.request_timeout = float(env.get("MODPY_DAEMON_REQUEST_TIMEOUT", "0"))
        self.restart_interval = float(env.get("MODPY_DAEMON_RESTART_INTERVAL", "0"))
        self.graceful_timeout = float(env.get("MODPY_DAEMON_GRACEFUL_TIMEOUT", "15"))
        self.shutdown_timeout = float(env.get("MODPY_DAEMON_SHUTDOWN_TIMEOUT", "5"))
        self.deadlock_timeout = float(env.get("MODPY_DAEMON_DEADLOCK_TIMEOUT", "300"))
        self.queue_timeout = float(env.get("MODPY_DAEMON_QUEUE_TIMEOUT", "0"))
        self.apache_uid = int(env.get("MODPY_DAEMON_APACHE_UID", "-1"))
        self.loglevel = env.get("MODPY_DAEMON_LOGLEVEL", "warning")
        self.python_path = [p for p in env.get("MODPY_DAEMON_PYTHON_PATH", "").split(":") if p]
        # An instance of a WSGIDaemonTemplate: the file whose mtime tells the monitor when it
        # was last used, and exit status 4 after inactivity-timeout (stop, do not restart).
        self.activity_file = env.get("MODPY_DAEMON_ACTIVITY_FILE", "")
        self.instance = env.get("MODPY_DAEMON_INSTANCE") == "1"
        # preloads: "script\tcallable" lines (WSGIScriptAlias ... process-group= application-group=,
        # WSGIImportScript ... process-group=; an empty callable only imports the script)
        self.preload = [
            (line.split("\t", 1)[0], line.split("\t", 1)[1] if "\t" in line else "")
            for line in env.get("MODPY_DAEMON_PRELOAD", "").splitlines() if line
        ]


# ---- logging into Apache's error log (this process's stderr is that log) ----

class ApacheFormatter(logging.Formatter):
    """Lines shaped like Apache's: [time] [wsgi:level] [pid N:tid N] message."""

    LEVELS = {"CRITICAL": "crit", "ERROR": "error", "WARNING": "warn", "INFO": "info", "DEBUG": "debug"}

    def __init__(self, group: str) -> None:
        super().__init__()
        self.group = group

    def format(self, record: logging.LogRecord) -> str:
        t = time.localtime(record.created)
        stamp = time.strftime("%a %b %d %H:%M:%S", t) + ".%06d " % (record.msecs * 1000) + time.strftime("%Y", t)
        level = self.LEVELS.get(record.levelname, "notice")
        msg = record.getMessage()
        if record.exc_info:
            msg += "\n" + "".join(traceback.format_exception(*record.exc_info)).rstrip()
        prefix = f"[{stamp}] [wsgi:{level}] [pid {os.getpid()}:tid {record.thread}] mod_py ({self.group}): "
        return "\n".join(prefix + line for line in msg.splitlines() or [""])


class ErrorStream:
    """wsgi.errors and sys.stdout/sys.stderr: lines to the error log at error level."""

    def __init__(self, logger: logging.Logger, level: int = logging.ERROR) -> None:
        self.logger, self.level, self.buf, self.lock = logger, level, "", threading.Lock()

    def write(self, s: str) -> int:
        with self.lock:
            self.buf += s
            *lines, self.buf = self.buf.split("\n")
        for line in lines:
            self.logger.log(self.level, "%s", line)
        return len(s)

    def writelines(self, lines: Iterable[str]) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        with self.lock:
            line, self.buf = self.buf, ""
        if line:
            self.logger.log(self.level, "%s", line)

    def isatty(self) -> bool:
        return False


def setup_logging(settings: Settings) -> None:
    handler = logging.StreamHandler(sys.__stderr__)
    handler.setFormatter(ApacheFormatter(settings.group))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    levels = {"emerg": 50, "alert": 50, "crit": 50, "error": 40, "warn": 30, "notice": 25, "info": 20}
    root.setLevel(levels.get(settings.loglevel.split(":")[0], 10))
    app_log = logging.getLogger("wsgi")
    sys.stdout = ErrorStream(app_log)
    sys.stderr = ErrorStream(app_log)


def _flush_stderr() -> None:
    """Before os._exit: what logging wrote to the error log (fd 2) must not stay buffered."""
    if sys.__stderr__ is not None:
        sys.__stderr__.flush()


# ---- framing ----

class Connection:
    """One Apache child's connection: frames in both directions."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.fd = sock.fileno()
        self.buf = bytearray()
        self.out = bytearray()
        self.greeted = False

    def fileno(self) -> int:
        return self.sock.fileno()

    def _fill(self, n: int) -> None:
        while len(self.buf) < n:
            want = max(65536, n - len(self.buf))
            chunk = _nowait.try_recv(self.fd, want) if _nowait is not None else None
            if chunk is None:
                chunk = self.sock.recv(want)
            if not chunk:
                raise EOFError
            self.buf += chunk

    def read_frame(self) -> tuple[int, bytes]:
        self._fill(8)
        kind, flags, reserved, length = _header.unpack_from(self.buf)
        if kind not in KINDS or flags or reserved:
            raise ProtocolError(f"bad frame header {bytes(self.buf[:8])!r}")
        if length > MAX_FRAME:
            raise ProtocolError(f"frame of {length} bytes is over the limit")
        if len(self.buf) >= 8 + length or length <= 65536:
            self._fill(8 + length)
            payload = bytes(self.buf[8:8 + length])
            del self.buf[:8 + length]
            return kind, payload
        # A large frame (a body chunk) is received straight into its own buffer.
        out = bytearray(length)
        have = len(self.buf) - 8
        out[:have] = self.buf[8:]
        self.buf.clear()
        view = memoryview(out)
        while have < length:
            n = self.sock.recv_into(view[have:])
            if not n:
                raise EOFError
            have += n
        return kind, out  # type: ignore[return-value]

    def queue(self, kind: int, payload: bytes = b"") -> None:
        """Adds a frame to what the next flush() sends (one write for a small response);
        a large payload is sent at once, without copying it."""
        self.out += _header.pack(kind, 0, 0, len(payload))
        if len(payload) <= 16384:
            self.out += payload
            return
        out, self.out = self.out, bytearray()
        bufs = [memoryview(out), memoryview(payload)]
        while bufs:
            n = self.sock.sendmsg(bufs)
            while bufs and n >= len(bufs[0]):
                n -= len(bufs[0])
                bufs.pop(0)
            if bufs and n:
                bufs[0] = bufs[0][n:]

    def flush(self) -> None:
        if self.out:
            out, self.out = bytes(self.out), bytearray()
            sent = _nowait.try_send(self.fd, out) if _nowait is not None else 0
            if sent < len(out):
                self.sock.sendall(out[sent:] if sent else out)

    def send(self, kind: int, payload: bytes = b"") -> None:
        self.queue(kind, payload)
        self.flush()

    def send_raw(self, data: bytes) -> None:
        """Sends what is queued, then `data` as it is (send_file's frame header, padding)."""
        self.flush()
        self.sock.sendall(data)

    def pending(self) -> int:
        """Bytes queued and not yet sent."""
        return len(self.out)

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass


# ---- WSGI ----

class Input:
    """wsgi.input: pulls the request body from the Apache child a chunk at a time."""

    def __init__(self, conn: AnyConn) -> None:
        self.conn, self.buf, self.eof = conn, bytearray(), False

    def _pull(self, want: int) -> bool:
        if self.eof:
            return False
        self.conn.send(READ, struct.pack(">I", max(1, min(want, MAX_CHUNK))))
        kind, payload = self.conn.read_frame()
        if kind == BODY_ERROR:
            self.eof = True
            raise OSError(payload.decode("utf-8", "replace") or "reading the request body failed")
        if kind != BODY:
            raise ProtocolError(f"expected BODY, got frame kind {kind}")
        if not payload:
            self.eof = True
            return False
        self.buf += payload
        return True

    def read(self, size: Optional[int] = -1) -> bytes:
        if size is None or size < 0:
            while self._pull(MAX_CHUNK):
                pass
            return self._take(len(self.buf))
        while len(self.buf) < size and self._pull(size - len(self.buf)):
            pass
        return self._take(min(size, len(self.buf)))

    def _take(self, n: int) -> bytes:
        data = bytes(self.buf[:n]) if n < len(self.buf) else bytes(self.buf)
        del self.buf[:n]
        return data

    def readline(self, size: Optional[int] = -1) -> bytes:
        limit = size if size is not None and size >= 0 else None
        while True:
            nl = self.buf.find(b"\n")
            if nl >= 0 and (limit is None or nl < limit):
                return self._take(nl + 1)
            if limit is not None and len(self.buf) >= limit:
                return self._take(limit)
            if not self._pull(65536):
                return self._take(len(self.buf))

    def readlines(self, hint: Optional[int] = -1) -> list[bytes]:
        lines: list[bytes] = []
        total = 0
        while True:
            line = self.readline()
            if not line:
                return lines
            lines.append(line)
            total += len(line)
            if hint is not None and 0 < hint <= total:
                return lines

    def __iter__(self) -> "Input":
        return self

    def __next__(self) -> bytes:
        line = self.readline()
        if not line:
            raise StopIteration
        return line

    def drain(self) -> None:
        """Reads what the app left unread, so the connection can carry the next request."""
        try:
            while self._pull(MAX_CHUNK):
                self.buf.clear()
        except OSError:
            pass  # the body failed (client gone, over LimitRequestBody): nothing left to read


class FileWrapper:
    """wsgi.file_wrapper: a real file is sent with os.sendfile straight into the socket."""

    def __init__(self, filelike: Any, blksize: int = 8192) -> None:
        self.filelike, self.blksize = filelike, blksize
        if hasattr(filelike, "close"):
            self.close = filelike.close

    def __iter__(self) -> "FileWrapper":
        return self

    def __next__(self) -> bytes:
        data: bytes = self.filelike.read(self.blksize)
        if data:
            return data
        raise StopIteration


def _q(s: str) -> str:
    """A string quoted as the embedded mode's messages (Rust's {:?}) quote it."""
    out = s.replace("\\", "\\\\").replace('"', '\\"')
    out = out.replace("\r", "\\r").replace("\n", "\\n").replace("\0", "\\0").replace("\t", "\\t")
    return f'"{out}"'


def _tname(v: Any) -> str:
    return type(v).__name__


_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+\Z")
# A valid status: three digits, then nothing or a space and a reason without controls.
_STATUS = re.compile(r"[0-9]{3}(?: [^\x00-\x08\x0a-\x1f\x7f\u0100-\U0010ffff]*)?\Z")
_BAD_VALUE = re.compile(r"[\r\n\x00\u0100-\U0010ffff]")

# Statuses and headers already found valid (most applications send the same few again and
# again): checked once, looked up after. Bounded, emptied when full.
_valid_statuses: dict[str, int] = {}
_valid_headers: set[tuple[str, str]] = set()
_CACHE_MAX = 1024


def check_status(s: str) -> int:
    """src/wsgi/response.rs parse_status, with the same messages."""
    code = _valid_statuses.get(s)
    if code is not None:
        return code
    if _STATUS.match(s) and int(s[:3]) >= 100:
        if len(_valid_statuses) >= _CACHE_MAX:
            _valid_statuses.clear()
        _valid_statuses[s] = code = int(s[:3])
        return code
    # Invalid: find what is wrong, for the message.
    if len(s) < 3 or not all(c in "0123456789" for c in s[:3]):
        raise WSGIError(f"status {_q(s)} does not start with a three-digit code")
    code = int(s[:3])
    if code < 100:
        raise WSGIError(f"status {_q(s)}: code below 100")
    rest = s[3:]
    if rest and not rest.startswith(" "):
        raise WSGIError(f"status {_q(s)}: the code must be followed by a space")
    for c in rest[1:]:
        if (ord(c) < 0x20 and c != "\t") or ord(c) == 0x7F or ord(c) > 0xFF:
            raise WSGIError(f"status {_q(s)} contains the character {c!r}")
    return code


def check_header(name: str, value: str) -> None:
    """src/wsgi/response.rs check_header, with the same messages."""
    if (name, value) in _valid_headers:
        return
    if not _TOKEN.match(name):
        raise WSGIError(f"header name {_q(name)} is not a valid HTTP token")
    if name.lower() in HOP_BY_HOP:
        raise WSGIError(f"hop-by-hop header {_q(name)} is not allowed from a WSGI application")
    bad = _BAD_VALUE.search(value)
    if bad is not None:
        c = bad.group()
        if c in "\r\n\0":
            raise WSGIError(f"header {_q(name)} has a value containing CR, LF or NUL")
        raise WSGIError(f"header {_q(name)} has a value containing {c!r}, which is not latin-1")
    if len(value) <= 256:
        if len(_valid_headers) >= _CACHE_MAX:
            _valid_headers.clear()
        _valid_headers.add((name, value))


class Response:
    """start_response and the state of one response."""

    def __init__(self, conn: AnyConn) -> None:
        self.conn = conn
        self.status: Optional[str] = None
        self.headers: list[tuple[str, str]] = []
        self.length: Optional[int] = None
        self.sent = False
        self.batch = False

    def start_response(self, status: Any, response_headers: Any, exc_info: Optional[tuple[Any, Any, Any]] = None) -> Callable[[bytes], None]:
        headers = response_headers
        if exc_info is not None:
            try:
                if self.sent:
                    raise exc_info[1].with_traceback(exc_info[2])
            finally:
                exc_info = None
        elif self.status is not None:
            raise WSGIError("start_response() called a second time without exc_info")
        if type(status) is not str:
            raise WSGIError(f"status must be str, not {_tname(status)}")
        check_status(status)
        if type(headers) is not list:
            raise WSGIError("response_headers must be a list of (name, value) tuples")
        checked = []
        length = None
        for h in headers:
            if type(h) is not tuple or len(h) != 2:
                raise WSGIError(f"response header {h!r} is not a (name, value) tuple")
            name, value = h
            if type(name) is not str or type(value) is not str:
                raise WSGIError(f"response header {h!r} must be a pair of str")
            check_header(name, value)
            if name.lower() == "content-length":
                try:
                    length = int(value.strip())
                except ValueError:
                    raise WSGIError(f"Content-Length {_q(value)} is not a number") from None
            checked.append((name, value))
        self.status, self.headers, self.length = status, checked, length
        return self.write

    def send_start(self) -> None:
        if self.sent:
            return
        if self.status is None:
            raise WSGIError("the application returned a body without calling start_response()")
        parts = [self.status.encode("latin-1")]
        for k, v in self.headers:
            parts += [k.encode("latin-1"), v.encode("latin-1")]
        self.conn.queue(START, b"\0".join(parts) + b"\0")  # goes out with the first data
        self.sent = True

    def finish(self, result: Any, head: bool) -> None:
        """Sends what the application returned (not a FileWrapper: see send_file)."""
        if type(result) in (list, tuple):
            # Checked before anything is sent, as embedded mode does: a 500, not a cut.
            total = 0
            for i, item in enumerate(result):
                if type(item) is not bytes:
                    raise WSGIError(f"response item {i} is {_tname(item)}, not bytes")
                total += len(item)
            if self.length is not None and total < self.length and not self.sent and not head:
                raise WSGIError(f"the application sent {total} bytes, less than its Content-Length of {self.length}")
            self.batch = True
        try:
            items = iter(result)
        except TypeError:
            raise WSGIError(f"the application returned {_tname(result)} , which is not an iterable of bytes") from None
        for i, item in enumerate(items):
            if type(item) is not bytes:
                raise WSGIError(f"response item {i} is {_tname(item)}, not bytes")
            if item:
                self.write(item)
        self.send_start()

    def set_length(self, n: int) -> None:
        """Adds a Content-Length header (send_file, for a file whose size it knows)."""
        self.headers.append(("Content-Length", str(n)))
        self.length = n

    def write(self, data: bytes) -> None:
        if type(data) is not bytes:
            raise WSGIError(f"write() takes bytes, not {_tname(data)}")
        self.send_start()
        for i in range(0, len(data), MAX_CHUNK):
            self.conn.queue(DATA, data[i:i + MAX_CHUNK])
        # A list body goes out in one write at END; anything else (a generator, write())
        # streams: each piece is sent as the app produces it.
        if not self.batch or self.conn.pending() > MAX_CHUNK:
            self.conn.flush()


def send_file(resp: AnyResponse, fw: FileWrapper) -> bool:
    """Sends a FileWrapper over a regular file with os.sendfile; False if it is not one."""
    try:
        fd = fw.filelike.fileno()
        st = os.fstat(fd)
        pos = os.lseek(fd, 0, os.SEEK_CUR)
    except (AttributeError, OSError, ValueError):
        return False
    if not stat.S_ISREG(st.st_mode):
        return False
    left = st.st_size - pos
    if resp.length is None and resp.status is not None and not resp.sent:
        resp.set_length(left)
    resp.send_start()
    conn = resp.conn
    while left > 0:
        n = min(left, MAX_CHUNK)
        conn.send_raw(_header.pack(DATA, 0, 0, n))
        sent = 0
        while sent < n:
            k = os.sendfile(conn.fileno(), fd, pos + sent, n - sent)
            if k == 0:  # the file shrank: pad the announced frame, then stop
                conn.send_raw(b"\0" * (n - sent))
                left = n = sent = 0
                break
            sent += k
        pos += n
        left -= n
    return True


# serve(conn, environ) -> whether the connection can carry another request
ServeFn = Callable[[Any, dict[str, Any]], bool]


class Loop:
    """The connection loop in Python: modpy._native.Loop's twin, used where that does not
    load (PyPy, an old CPython, the extension not built). Same interface, same behaviour.

    One epoll for the listener and every idle connection, each fd armed for one event at a
    time (EPOLLONESHOT): a thread that takes a request serves it and re-arms the fd.
    Who waits on it: one thread, the leader, serves request after request (as one thread
    would: no hand-over of the GIL, no sleeping and waking between requests when they come
    back to back). The other threads stand by, asleep on a timer that is always due within
    2 x PROMOTE_AFTER of the start of the leader's request (`lead_start`): a request that runs
    longer than PROMOTE_AFTER (the app waits on a database, or is slow) wakes one of them,
    which becomes the leader and serves what comes next; the old leader stands by once done.
    So all `threads` serve at once when requests block, and one serves when they do not. The
    leader moves the timer on only when it would fire too soon, about once per PROMOTE_AFTER
    under load (`start_lead`). Without a timerfd (no ctypes): every thread waits on the epoll.
    """

    def __init__(self, listener: int, secret: bytes, apache_uid: int, threads: int,
                 promote_after: float, serve: ServeFn) -> None:
        self.listener: Optional[socket.socket] = socket.socket(fileno=listener)
        self.listener.setblocking(False)
        self.secret, self.apache_uid, self.promote_after = secret, apache_uid, promote_after
        self.serve_request = serve
        self.epoll = select.epoll()
        self.epoll.register(listener, select.EPOLLIN | select.EPOLLONESHOT)
        self.leader: Optional[int] = None
        self.lead_start: Optional[float] = None
        self.timer: Optional[Timer] = None
        self.standby: Optional[select.epoll] = None
        if _nowait is not None and threads > 1:
            try:
                self.timer = _nowait.timer()
                self.standby = select.epoll()
                self.standby.register(self.timer.fd, select.EPOLLIN | select.EPOLLONESHOT)
            except OSError:
                self.timer = self.standby = None
        self.conns: dict[int, Connection] = {}
        self.busy: set[int] = set()
        self.stopping = False
        self.closed = False
        self.lock = threading.Lock()
        self.active_since: dict[int, float] = {}  # thread id -> request start
        self.requests = 0
        self.last_activity = time.monotonic()

    # -- the interface Worker uses (modpy._native.Loop's) --

    def run_thread(self) -> None:
        me = threading.get_ident()
        try:
            self.serve_forever(me)
        finally:
            # A leader that ends leaves the lead to a thread standing by.
            with self.lock:
                if self.leader == me:
                    self.leader = None

    def stop(self) -> None:
        """No new connections, and the idle kept-alive ones are closed (no request is on them:
        the Apache side sends a request that meets the close again, on a fresh connection).
        Connections accepted but not yet greeted carry a request that is on its way: they are
        served."""
        with self.lock:
            self.stopping = True
            if self.listener is not None:
                self.epoll.unregister(self.listener.fileno())
                self.listener.close()
                self.listener = None
            for fd in [fd for fd, c in self.conns.items() if c.greeted and fd not in self.busy]:
                self._forget(fd)

    def close(self) -> None:
        self.closed = True

    def pending(self) -> int:
        with self.lock:
            waiting = sum(1 for fd, c in self.conns.items() if fd in self.busy or not c.greeted)
            return max(len(self.active_since), waiting)

    def oldest_age(self) -> Optional[float]:
        with self.lock:
            oldest = min(self.active_since.values(), default=None)
        return None if oldest is None else time.monotonic() - oldest

    def idle_for(self) -> float:
        return time.monotonic() - self.last_activity

    # -- inside --

    def _forget(self, fd: int) -> None:
        """Drops a connection (lock held)."""
        conn = self.conns.pop(fd, None)
        if conn is not None:
            try:
                self.epoll.unregister(fd)
            except OSError:
                pass
            conn.close()

    def accept(self) -> None:
        with self.lock:
            listener = self.listener
        if listener is None:
            return
        try:
            while True:
                try:
                    sock, _ = listener.accept()
                except (BlockingIOError, InterruptedError):
                    return
                except OSError:
                    if self.stopping:
                        return
                    raise
                sock.setblocking(True)
                try:
                    # SO_PEERCRED is 17 on Linux (PyPy's socket module lacks the name)
                    cred = sock.getsockopt(socket.SOL_SOCKET, getattr(socket, "SO_PEERCRED", 17), 12)
                    uid = struct.unpack("3i", cred)[1]
                except OSError as e:
                    log.error("cannot check the peer of a new connection (%s); closing it", e)
                    sock.close()
                    continue
                if uid not in (0, self.apache_uid):
                    log.error("refused a connection from uid %d (only Apache's uid %d may connect)", uid, self.apache_uid)
                    sock.close()
                    continue
                conn = Connection(sock)
                with self.lock:
                    self.conns[sock.fileno()] = conn
                    self.epoll.register(sock.fileno(), select.EPOLLIN | select.EPOLLONESHOT)
        finally:
            with self.lock:
                if self.listener is listener and listener is not None:
                    try:
                        self.epoll.modify(listener.fileno(), select.EPOLLIN | select.EPOLLONESHOT)
                    except OSError:
                        pass

    def serve_forever(self, me: int) -> None:
        while not self.closed:
            if self.standby is not None and not self.lead(me):
                continue
            try:
                events = self.epoll.poll(0.5, 1)
            except OSError:
                return
            for fd, _ in events:
                with self.lock:
                    listener = self.listener
                    conn = self.conns.get(fd)
                    if conn is not None:
                        self.busy.add(fd)
                if listener is not None and fd == listener.fileno():
                    try:
                        self.accept()
                    except OSError:  # the listener was closed under us: stopping
                        pass
                elif conn is not None:
                    # Only the leader's requests count for the standby timer: a thread that
                    # lost the lead while it waited in poll() serves what it got without
                    # promoting anyone (the new leader is already polling).
                    leading = self.timer is not None and self.start_lead(me)
                    self.serve_connection(fd, conn)
                    if leading:
                        # Under the lock: a standby may have taken the lead meanwhile, and
                        # lead_start is now its request's.
                        with self.lock:
                            if self.leader == me:
                                self.lead_start = None

    def start_lead(self, me: int) -> bool:
        """The leader starts serving a request: makes sure the timer fires between
        promote_after and twice that from now. False if this thread is not the leader."""
        assert self.timer is not None
        now = time.monotonic()
        with self.lock:
            if self.leader != me:
                return False
            self.lead_start = now
            deadline = self.timer.deadline
            if deadline is None or deadline < now + self.promote_after:
                try:
                    self.timer.set_at(now + 2 * self.promote_after)
                except OSError as e:  # not expected: slow requests would hold up the others
                    log.error("cannot set the standby timer: %s", e)
        return True

    def lead(self, me: int) -> bool:
        """True when this thread is (or has just become) the leader; otherwise it stands by
        until the leader's request outlasts the timer (or half a second passes)."""
        assert self.standby is not None and self.timer is not None
        with self.lock:
            if self.leader is None:
                self.leader = me
            if self.leader == me:
                return True
        try:
            events = self.standby.poll(0.5, 1)
        except OSError:  # not expected (the standby epoll is never closed): do not spin
            time.sleep(0.5)
            return False
        if not events:
            return False
        # The timer fired: the leader is idle (nothing to do: it sets the timer again when it
        # next starts a request), or in a request that has run for promote_after (this thread
        # takes the lead), or in a younger one (the timer is set for when that one will have).
        # Under the lock, as start_lead() and the leader's end of request.
        with self.lock:
            promoted = False
            if self.timer.consume() and self.lead_start is not None:
                now = time.monotonic()
                if now - self.lead_start >= self.promote_after:
                    self.leader, self.lead_start, promoted = me, None, True
                else:
                    try:
                        self.timer.set_at(self.lead_start + self.promote_after)
                    except OSError as e:  # not expected
                        log.error("cannot set the standby timer: %s", e)
        try:
            self.standby.modify(self.timer.fd, select.EPOLLIN | select.EPOLLONESHOT)
        except OSError as e:  # not expected: no standby thread would be woken again
            log.error("cannot re-arm the standby timer (slow requests now hold up the others): %s", e)
        return promoted

    def serve_connection(self, fd: int, conn: Connection) -> None:
        """Serves the requests waiting on conn, then re-arms it (or drops it)."""
        keep = False
        try:
            while True:
                keep = self.serve(conn)
                # A request already read into the buffer will not make epoll fire.
                if not (keep and conn.buf):
                    break
        except (EOFError, ConnectionError):
            keep = False
        except ProtocolError as e:
            log.error("closing a connection: %s", e)
            keep = False
        except Exception:
            log.exception("internal error serving a request")
            keep = False
        with self.lock:
            self.busy.discard(fd)
            if keep and not self.stopping:
                try:
                    if _nowait is not None:
                        _nowait.rearm(self.epoll.fileno(), fd, select.EPOLLIN | select.EPOLLONESHOT)
                    else:
                        self.epoll.modify(fd, select.EPOLLIN | select.EPOLLONESHOT)
                except OSError as e:  # (the epoll closed: stopping) never a connection left unwatched
                    log.debug("dropping a connection that cannot be watched again: %s", e)
                    self._forget(fd)
            else:
                self._forget(fd)

    def serve(self, conn: Connection) -> bool:
        """Reads and serves one request on conn; True if the connection can carry another."""
        kind, payload = conn.read_frame()
        if not conn.greeted:
            if kind != HELLO or len(payload) != 10 + SECRET_LEN or payload[:8] != MAGIC:
                raise ProtocolError("the connection did not start with HELLO")
            if struct.unpack(">H", payload[8:10])[0] != VERSION:
                raise ProtocolError("protocol version mismatch")
            if not _consteq(payload[10:], self.secret):
                raise ProtocolError("wrong group secret")
            conn.greeted = True
            conn.send(HELLO_OK, struct.pack(">H", VERSION))
            kind, payload = conn.read_frame()
        if kind != REQUEST:
            raise ProtocolError(f"expected REQUEST, got frame kind {kind}")
        strs = payload.decode("latin-1").split("\0")
        if len(strs) % 2 != 1 or strs[-1]:
            raise ProtocolError("malformed REQUEST")
        del strs[-1]
        environ: dict[str, Any] = dict(zip(strs[0::2], strs[1::2]))
        tid = threading.get_ident()
        with self.lock:
            self.active_since[tid] = time.monotonic()
            self.requests += 1
        try:
            return self.serve_request(conn, environ)
        finally:
            with self.lock:
                del self.active_since[tid]
                self.last_activity = time.monotonic()


class Worker:
    """The process: app calls, limits, stopping; the connections are its `loop`'s."""

    def __init__(self, settings: Settings, listener: socket.socket) -> None:
        self.s = settings
        make = Loop if _native is None else _native.Loop
        self.native = _native is not None
        self.loop = make(listener.detach(), settings.secret, settings.apache_uid,
                         settings.threads, PROMOTE_AFTER, self.serve)
        self.threads: list[threading.Thread] = []
        self.stopping: Optional[float] = None  # deadline once stopping
        self.stop_reason = ""
        self.done = threading.Event()
        # Re-entrant: stop() also runs from signal handlers in the main thread.
        self.lock = threading.RLock()
        self.started = time.monotonic()
        self.apps: dict[tuple[str, str], Any] = {}
        self.mtimes: dict[str, Optional[int]] = {}
        self.exit_code = 0
        self.touched = 0.0
        self.stuck = False  # threads still in a request when run() returned
        # The wsgi.* keys that are the same for every request (wsgi.errors: sys.stderr as
        # setup_logging() made it).
        self.wsgi_keys: dict[str, Any] = {
            "wsgi.version": (1, 0),
            "wsgi.input_terminated": True,
            "wsgi.errors": sys.stderr,
            "wsgi.multithread": settings.threads > 1,
            "wsgi.multiprocess": True,
            "wsgi.run_once": False,
            "wsgi.file_wrapper": FileWrapper,
        }

    # -- lifecycle --

    def stop(self, reason: str, timeout: float) -> None:
        with self.lock:
            if self.stopping is not None:
                return
            self.stop_reason = reason
            self.stopping = time.monotonic() + timeout
            self.loop.stop()
        log.info("stopping: %s", reason)

    def run(self) -> int:
        for script, callable_name in self.s.preload:
            try:
                if callable_name:
                    self.application(script, callable_name, reloading=False)
                else:
                    _wsgi.load_script(script, False)
            except Exception:
                log.exception("failed to preload WSGI script '%s'", script)
        self.arm_deadlock_timer()  # before the first request can hold the GIL
        for _ in range(self.s.threads):
            t = threading.Thread(target=self.loop.run_thread, daemon=True)
            t.start()
            self.threads.append(t)
        threading.Thread(target=self.watchdog, daemon=True).start()
        while True:
            self.done.wait(0.2)  # signal handlers run here, in the main thread
            if self.stopping is None:
                continue
            # Not only running requests: a connection being greeted, or accepted and not yet
            # greeted, has a request on its way that exiting would lose.
            busy = self.loop.pending()
            if busy == 0:
                break
            if time.monotonic() > self.stopping:
                log.warning("%d request(s) still running after the timeout; exiting", busy)
                break
        self.loop.close()
        if self.native:
            # The native loop's threads must be out of its code before the interpreter
            # finalizes (a thread that takes the GIL then is ended by pthread_exit, which
            # must not unwind through Rust frames); those in a request stay: see main().
            deadline = time.monotonic() + 1.0
            for t in self.threads:
                t.join(max(0.0, deadline - time.monotonic()))
            self.stuck = any(t.is_alive() for t in self.threads)
        return 0

    def touch(self) -> None:
        """Marks the activity file (at most twice a second)."""
        now = time.monotonic()
        if self.s.activity_file and now - self.touched > 0.5:
            self.touched = now
            try:
                os.utime(self.s.activity_file)
            except OSError:
                pass

    def arm_deadlock_timer(self) -> None:
        """deadlock-timeout: faulthandler's own thread needs no GIL. Re-armed every second by
        the watchdog, it fires only when no Python thread has run for that long (the GIL is
        held and never let go): it writes every thread's stack to the error log and exits,
        and the monitor starts another process."""
        if self.s.deadlock_timeout and _DEADLOCK_TIMER is not None:
            _DEADLOCK_TIMER(self.s.deadlock_timeout, exit=True, file=sys.__stderr__)

    def watchdog(self) -> None:
        armed = time.monotonic()
        while True:
            time.sleep(0.25)
            now = time.monotonic()
            if now - armed >= 1.0:
                self.arm_deadlock_timer()
                armed = now
            oldest = self.loop.oldest_age()
            busy = oldest is not None
            if self.s.request_timeout and oldest is not None and oldest > self.s.request_timeout + 1:
                log.error("a request ran longer than request-timeout=%gs: restarting the daemon process", self.s.request_timeout)
                _flush_stderr()
                os._exit(3)
            if self.stopping is not None:
                continue
            if busy:
                self.touch()
            if self.s.inactivity_timeout and not busy and self.loop.idle_for() > self.s.inactivity_timeout:
                if self.s.instance:
                    self.exit_code = EXIT_INACTIVE
                self.stop(f"inactivity-timeout of {self.s.inactivity_timeout:g}s", self.s.graceful_timeout)
            if self.s.restart_interval and now - self.started > self.s.restart_interval:
                self.stop(f"restart-interval of {self.s.restart_interval:g}s", self.s.graceful_timeout)

    # -- requests --

    def serve(self, conn: AnyConn, environ: dict[str, Any]) -> bool:
        """Serves one request (the loop has read it); True if the connection can carry
        another. Errors are logged here: the loop only drops the connection on False."""
        if self.s.activity_file:
            self.touch()
        try:
            self.handle(conn, environ)
        except (EOFError, ConnectionError):
            return False
        except ProtocolError as e:
            log.error("closing a connection: %s", e)
            return False
        except Exception:
            log.exception("internal error serving a request")
            return False
        finally:
            if self.s.maximum_requests and self.loop.requests >= self.s.maximum_requests:
                self.stop(f"maximum-requests={self.s.maximum_requests} reached", self.s.graceful_timeout)
        return self.stopping is None

    def application(self, script: str, callable_name: str, reloading: bool,
                    apache_mtime: Optional[str] = None) -> Any:
        """The script's callable, (re)loaded when needed. `apache_mtime`: the script's mtime in
        microseconds as Apache's directory walk found it (spares a stat per request)."""
        key = (script, callable_name)
        mtime: Optional[int] = None
        if reloading or key not in self.apps:
            try:
                mtime = int(apache_mtime) if apache_mtime else os.stat(script).st_mtime_ns // 1000
            except (OSError, ValueError):
                mtime = None
        app = self.apps.get(key)
        if app is not None and (not reloading or self.mtimes.get(script) == mtime):
            return app
        fresh = script in self.mtimes
        module = _wsgi.load_script(script, fresh)
        self.mtimes[script] = mtime
        for k in [k for k in self.apps if k[0] == script]:
            del self.apps[k]
        try:
            app = getattr(module, callable_name)
        except AttributeError:
            raise LookupError(f"target WSGI script '{script}' does not contain WSGI application '{callable_name}'") from None
        self.apps[key] = app
        return app

    def queued_for(self, environ: dict[str, Any]) -> Optional[float]:
        """How long the request waited before a worker thread took it, if over queue-timeout."""
        if not self.s.queue_timeout:
            return None
        try:
            waited = time.time() - int(environ.get("mod_wsgi.queue_start", "")) / 1e6
        except ValueError:
            return None
        return waited if waited > self.s.queue_timeout else None

    def handle(self, conn: AnyConn, environ: dict[str, Any]) -> None:
        # A WSGIHandlerScript's handle_request serves SCRIPT_FILENAME (mod_wsgi).
        script = environ.get("mod_wsgi.handler_script") or environ.get("SCRIPT_FILENAME", "")
        callable_name = environ.get("mod_wsgi.callable_object", "application")
        reloading = environ.get("mod_wsgi.script_reloading", "1") == "1"
        inp = Input(conn)
        if environ.get("CONTENT_LENGTH", "0") in ("", "0") and "HTTP_TRANSFER_ENCODING" not in environ:
            inp.eof = True  # no body: nothing to pull (and no round trip to find out)
        for key in ("mod_wsgi.version", "apache.version"):
            if key in environ:
                environ[key] = _version_tuple(environ[key])
        mtime = environ.pop("mod_py.script_mtime", None)
        environ.update(self.wsgi_keys)
        environ["wsgi.url_scheme"] = environ.pop("mod_py.url_scheme", "http")
        environ["wsgi.input"] = inp
        resp: AnyResponse = _native.Response(conn) if self.native else Response(conn)  # type: ignore[arg-type]
        result: Any = None
        waited = self.queued_for(environ)
        try:
            if waited is not None:
                log.error("queue-timeout of %gs expired for '%s': the request waited %.1fs for a "
                          "daemon process; answering 503", self.s.queue_timeout,
                          environ.get("REQUEST_URI", environ.get("PATH_INFO", "")), waited)
                app = _service_unavailable
            else:
                app = self.application(script, callable_name, reloading, mtime)
            result = app(environ, resp.start_response)
            if not (isinstance(result, FileWrapper) and send_file(resp, result)):
                resp.finish(result, environ.get("REQUEST_METHOD") == "HEAD")
        except (EOFError, ConnectionError, ProtocolError):
            _close(result)
            raise
        except BaseException as e:
            _close(result)
            result = None
            who = f"WSGI application '{script}' ({callable_name})"
            if isinstance(e, WSGIError):
                log.error("%s: %s", who, e)
            elif isinstance(e, (KeyboardInterrupt, SystemExit)):
                log.error("%s raised %s", who, type(e).__name__)
            else:
                log.error("%s raised an exception:", who, exc_info=True)
            if resp.sent:
                conn.send(ABORT, str(e).encode("utf-8", "replace")[:4096])
                raise EOFError  # the connection may hold unread body: not reused
            else:
                inp.drain()
                conn.send(START, b"500 Internal Server Error\0")
                conn.send(END)
            return
        try:
            _close(result)
        except Exception:
            log.error("WSGI application '%s' (%s): close() raised an exception:", script, callable_name, exc_info=True)
            conn.send(ABORT, b"close() failed")
            raise EOFError from None
        if not inp.eof:
            inp.drain()
        conn.send(END)


# faulthandler's watchdog timer (an implementation may lack it: deadlock-timeout is then off).
_DEADLOCK_TIMER: Optional[Callable[..., None]] = getattr(faulthandler, "dump_traceback_later", None)


_versions: dict[str, tuple[int, ...]] = {}


def _version_tuple(s: str) -> tuple[int, ...]:
    """"4,9,4" -> (4, 9, 4), made once per distinct string."""
    v = _versions.get(s)
    if v is None:
        v = _versions[s] = tuple(int(x) for x in s.split(","))
    return v


def _service_unavailable(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
    """The answer to a request that waited longer than queue-timeout (mod_wsgi's 503)."""
    start_response("503 Service Unavailable", [("Content-Type", "text/plain; charset=utf-8")])
    return [b"Service Unavailable: the request waited too long for a daemon process.\n"]


def _close(result: Any) -> None:
    if type(result) is list:  # the usual answer, which has no close() (no getattr failing)
        return
    close = getattr(result, "close", None)
    if close is not None:
        close()


def _consteq(a: bytes, b: bytes) -> bool:
    if len(a) != len(b):
        return False
    diff = 0
    for x, y in zip(a, b):
        diff |= x ^ y
    return diff == 0


def main() -> int:
    settings = Settings(dict(os.environ))
    for key in [k for k in os.environ if k.startswith("MODPY_DAEMON_SECRET")]:
        del os.environ[key]
    setup_logging(settings)
    if len(sys.argv) > 1:  # the display name (display-name=, else "(wsgi:GROUP:N)")
        try:
            with open("/proc/self/comm", "w") as f:
                f.write(sys.argv[1][:15])
        except OSError:
            pass
    for p in reversed(settings.python_path):
        if p not in sys.path:
            sys.path.insert(0, p)
    listener = socket.socket(fileno=settings.fd)
    worker = Worker(settings, listener)
    signal.signal(signal.SIGTERM, lambda *_: worker.stop("SIGTERM", settings.shutdown_timeout))
    signal.signal(signal.SIGINT, lambda *_: worker.stop("SIGINT", settings.shutdown_timeout))
    signal.signal(signal.SIGUSR1, lambda *_: worker.stop("graceful restart", settings.graceful_timeout))
    log.info("daemon process started (Python %s, %d threads, %s)", sys.version.split()[0], settings.threads,
             "modpy._native" if worker.native else "pure-Python loop")
    rc = worker.run() or worker.exit_code
    log.info("daemon process exiting: %s (%d requests)", worker.stop_reason, worker.loop.requests)
    if worker.stuck:
        # Threads still in a request inside the native loop: finalizing the interpreter under
        # them is not safe (see Worker.run), so exit as finalizing would, without it.
        atexit._run_exitfuncs()
        for stream in (sys.stdout, sys.stderr):  # the app's last, unfinished lines
            try:
                stream.flush()
            except Exception:
                pass
        logging.shutdown()
        _flush_stderr()
        os._exit(rc)
    _flush_stderr()
    return rc


if __name__ == "__main__":
    sys.exit(main())
