"""mod_python.wsgi (the 3.5 handler): a WSGI application from a PythonHandler, run as 3.5 ran it.

    <Location /app>
        SetHandler mod_python
        PythonHandler mod_python.wsgi
        PythonOption mod_python.wsgi.application myproject.wsgi::application
    </Location>

As in 3.5: the module is imported with apache.import_module (again when its file changes,
unless PythonAutoReload Off). SCRIPT_NAME is ``PythonOption mod_python.wsgi.base_uri``, else
the <Location> of the PythonHandler (without its trailing slash), else ""; PATH_INFO is the
rest of the URI, and a URI outside base_uri is declined. The environ holds the CGI variables,
wsgi.input is the request (an ``mp_request``) and wsgi.errors is sys.stderr; a str in the
response is sent as Latin-1. For mod_py's strict PEP 3333 core (daemon processes, mod_wsgi's
checks) use ``PythonHandler modpy.wsgi``.
"""
from __future__ import annotations

import sys
from typing import Any, Callable, Iterable, Iterator, Optional

from . import apache

__all__ = ["handler", "mp_request"]


class mp_request:
    """wsgi.input: the request, which is what 3.5 passed (its type was named mp_request)."""

    def __init__(self, req: Any) -> None:
        self._req = req

    def read(self, size: int = -1) -> bytes:
        return self._req.read(size)

    def readline(self, size: int = -1) -> bytes:
        return self._req.readline(size)

    def readlines(self, hint: int = -1) -> list[bytes]:
        return self._req.readlines(hint)

    def __iter__(self) -> Iterator[bytes]:
        return iter(self._req.readline, b"")

    def __getattr__(self, name: str) -> Any:
        return getattr(self._req, name)


def _application(req: Any, spec: str) -> Optional[Callable[..., Any]]:
    module_name, _, name = spec.partition("::")
    config = req.get_config()
    module = apache.import_module(module_name, autoreload=int(config.get("PythonAutoReload", "1")),
                                  log=int(config.get("PythonDebug", "0")))
    return module.__dict__.get(name or "application")


def _base_uri(req: Any, options: dict[str, str]) -> str:
    base_uri = options.get("mod_python.wsgi.base_uri")
    if base_uri is None:
        hlist = req.hlist
        return (hlist.directory or "").rstrip("/") if hlist is not None and hlist.is_location else ""
    if base_uri.endswith("/"):
        raise ValueError(f"PythonOption 'mod_python.wsgi.base_uri' ('{base_uri}') must not end with '/'")
    return base_uri


def _environ(req: Any, base_uri: str) -> dict[str, Any]:
    req.path_info = req.uri[len(base_uri):]
    env: dict[str, Any] = apache.build_cgi_env(req)
    env["SCRIPT_NAME"], env["PATH_INFO"] = base_uri, req.path_info
    authorization = req.headers_in.get("authorization")
    if authorization:
        env["HTTP_AUTHORIZATION"] = authorization
    https = env.get("HTTPS", "off").lower() != "off"
    env.update({
        "wsgi.input": mp_request(req),
        "wsgi.errors": sys.stderr,
        "wsgi.version": (1, 0),
        "wsgi.multithread": bool(apache.mpm_query(apache.AP_MPMQ_IS_THREADED)),
        "wsgi.multiprocess": bool(apache.mpm_query(apache.AP_MPMQ_IS_FORKED)),
        "wsgi.run_once": False,
        "wsgi.url_scheme": "https" if https else "http",
    })
    return env


def _body(data: Any) -> bytes:
    return data.encode("latin-1") if isinstance(data, str) else data


def handler(req: Any) -> int:
    options = req.get_options()
    spec = options.get("mod_python.wsgi.application")
    app = _application(req, spec) if spec else None
    if app is None:
        req.log_error(f"WSGI handler: mod_python.wsgi.application ({spec!r}) not found, declining.",
                      apache.APLOG_WARNING)
        return apache.DECLINED
    base_uri = _base_uri(req, options)
    if not req.uri.startswith(base_uri):
        req.log_error(f"WSGI handler: req.uri ({req.uri!r}) does not start with "
                      f"mod_python.wsgi.base_uri ({base_uri!r}), declining.", apache.APLOG_WARNING)
        return apache.DECLINED

    def write(data: Any) -> None:
        req.write(_body(data))

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Callable[[Any], None]:
        if exc_info:
            raise exc_info[1].with_traceback(exc_info[2])
        for name, value in headers:
            if name.lower() == "content-type":
                req.content_type = value  # Apache sends r->content_type, not a header of that name
            else:
                req.headers_out.add(name, value)
        req.status = int(status.split(" ", 1)[0])
        req.status_line = status
        return write

    response: Iterable[Any] = app(_environ(req, base_uri), start_response)
    try:
        for token in response:
            req.write(_body(token))
    finally:
        close = getattr(response, "close", None)
        if close is not None:
            close()
    return apache.OK
