"""The Apache API for Python code running in mod_py (mod_python 3.5 names work too).

Classes: Request, Table, Connection, Server (wrapping request_rec, apr_table_t, conn_rec,
server_rec; fields by their C names). Constants: OK, DECLINED, DONE, every HTTP_* status,
M_* methods, APLOG_* levels, AUTH_*/AUTHZ_* provider results, all taken from httpd's headers
when mod_py was built.
"""
from __future__ import annotations

import _modpy
from _modpy import SERVER_RETURN, Connection, Request, Server, Table  # noqa: F401

# Filters (PythonInputFilter / PythonOutputFilter): mod_python's filter object and the
# brigade API; APRError is raised by their I/O methods (and by Connection.read/write).
from _modpy import APRError, Brigade, Bucket, Filter  # noqa: F401

# Every constant mod_py was built with (OK, DECLINED, DONE, HTTP_*, M_*, APLOG_*, AUTH_*, ...).
for _name in dir(_modpy):
    if _name.isupper() and isinstance(getattr(_modpy, _name), int):
        globals()[_name] = getattr(_modpy, _name)
del _name

OK: int = _modpy.OK
DECLINED: int = _modpy.DECLINED
DONE: int = _modpy.DONE

# mod_python spellings of a few statuses.
HTTP_REQUEST_TIME_OUT: int = _modpy.HTTP_REQUEST_TIME_OUT
HTTP_GATEWAY_TIME_OUT: int = _modpy.HTTP_GATEWAY_TIME_OUT

# ap_get_remote_host types (http_core.h).
REMOTE_HOST = 0
REMOTE_NAME = 1
REMOTE_NOLOOKUP = 2
REMOTE_DOUBLE_REV = 3

# mod_python's interpreter name for the main interpreter (the only one mod_py runs).
MAIN_INTERPRETER = "main_interpreter"


def log_error(message: str, level: int = _modpy.APLOG_ERR, server: Server | None = None) -> None:
    """mod_python's apache.log_error: to the given server's log, else with the context of the
    request being served on this thread, else the main server's."""
    if server is not None:
        server.log_error(message, level)
    else:
        _modpy.log_error(level, message)


def main_server() -> Server | None:
    return _modpy.main_server()


def mpm_query(code: int | str) -> int:
    """ap_mpm_query: pass an AP_MPMQ_* constant (mod_python's API); "is_threaded" is accepted too."""
    if code == "is_threaded":
        code = _modpy.AP_MPMQ_IS_THREADED
    if not isinstance(code, int):
        raise TypeError(f"mpm_query takes an AP_MPMQ_* constant, not {code!r}")
    return _modpy.mpm_query(code)


__all__ = sorted({name for name in globals() if name.isupper()} | {
    "Connection", "Request", "Server", "Table", "log_error", "main_server", "mpm_query",
} | {"APRError", "Brigade", "Bucket", "Filter"})
