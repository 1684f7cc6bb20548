"""Python logging, print() and sys.stderr -> Apache's error log, at the matching level and
with the context (client, log id) of the request being served on the calling thread."""
from __future__ import annotations

import io
import logging
import sys
import threading

import _modpy

APLOG_CRIT: int = _modpy.APLOG_CRIT
APLOG_ERR: int = _modpy.APLOG_ERR
APLOG_WARNING: int = _modpy.APLOG_WARNING
APLOG_NOTICE: int = _modpy.APLOG_NOTICE
APLOG_INFO: int = _modpy.APLOG_INFO
APLOG_DEBUG: int = _modpy.APLOG_DEBUG


def apache_level(levelno: int) -> int:
    """Python logging level -> Apache APLOG_* level."""
    if levelno >= logging.CRITICAL:
        return APLOG_CRIT
    if levelno >= logging.ERROR:
        return APLOG_ERR
    if levelno >= logging.WARNING:
        return APLOG_WARNING
    if levelno >= logging.INFO:
        return APLOG_INFO
    return APLOG_DEBUG


def python_level(aplog: int) -> int:
    """Apache LogLevel -> the Python logging level that lets the same records through."""
    if aplog >= APLOG_DEBUG:
        return logging.DEBUG
    if aplog >= APLOG_INFO:
        return logging.INFO
    if aplog >= APLOG_WARNING:
        return logging.WARNING
    if aplog >= APLOG_ERR:
        return logging.ERROR
    return logging.CRITICAL


class ApacheLogHandler(logging.Handler):
    """A logging handler writing each record to Apache's error log at its level."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            msg = self.format(record)
            level = apache_level(record.levelno)
            for line in msg.splitlines() or [""]:
                _modpy.log_error(level, line)
        except Exception:
            self.handleError(record)


class ErrorLogStream(io.TextIOBase):
    """sys.stdout / sys.stderr replacement: whole lines go to the error log (per thread, so
    concurrent requests do not interleave inside a line)."""

    def __init__(self, name: str, level: int) -> None:
        self.name = name
        self.level = level
        self._local = threading.local()

    def writable(self) -> bool:
        return True

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return "utf-8"

    def _buf(self) -> list[str]:
        buf = getattr(self._local, "buf", None)
        if buf is None:
            buf = self._local.buf = []
        return buf

    def write(self, s: str) -> int:
        if not isinstance(s, str):
            raise TypeError(f"write() argument must be str, not {type(s).__name__}")
        buf = self._buf()
        buf.append(s)
        if "\n" in s:
            text = "".join(buf)
            *lines, rest = text.split("\n")
            buf[:] = [rest] if rest else []
            for line in lines:
                _modpy.log_error(self.level, line)
        return len(s)

    def flush(self) -> None:
        buf = self._buf()
        if buf:
            text = "".join(buf)
            buf.clear()
            if text:
                _modpy.log_error(self.level, text)

    def isatty(self) -> bool:
        return False


def install(apache_loglevel: int) -> None:
    root = logging.getLogger()
    if not any(isinstance(h, ApacheLogHandler) for h in root.handlers):
        handler = ApacheLogHandler()
        handler.setFormatter(logging.Formatter("%(name)s: %(message)s"))
        root.addHandler(handler)
    root.setLevel(python_level(apache_loglevel))
    # mod_wsgi sends both to the error log at error level; so does mod_py.
    sys.stdout = ErrorLogStream("<stdout>", APLOG_ERR)
    sys.stderr = ErrorLogStream("<stderr>", APLOG_ERR)
