"""Serve a WSGI application from a PythonHandler (what mod_python.wsgi did), through mod_py's
own WSGI core (the same one WSGIScriptAlias uses).

    <Location /app>
        SetHandler modpy
        PythonHandler modpy.wsgi
        PythonOption wsgi.application myproject.wsgi::application
        PythonOption wsgi.base_uri /app        # SCRIPT_NAME; default "": PATH_INFO is the whole URI
    </Location>

The mod_python.wsgi option names (mod_python.wsgi.application, mod_python.wsgi.base_uri) work
too.
"""
from __future__ import annotations

import importlib
from typing import Any, Callable

import _modpy
from _modpy import FileWrapper, Input, WSGIError  # noqa: F401

__all__ = ["handler", "FileWrapper", "Input", "WSGIError"]

_apps: dict[str, Callable[..., Any]] = {}


def _application(spec: str) -> Callable[..., Any]:
    app = _apps.get(spec)
    if app is None:
        module_name, _, attr = spec.partition("::")
        obj: Any = importlib.import_module(module_name)
        for part in (attr or "application").split("."):
            obj = getattr(obj, part)
        app = _apps[spec] = obj
    return app


def handler(req: Any) -> int:
    options = req.get_options()
    spec = options.get("wsgi.application") or options.get("mod_python.wsgi.application")
    if not spec:
        raise ValueError("modpy.wsgi: set PythonOption wsgi.application module::callable")
    base_uri = options.get("wsgi.base_uri") or options.get("mod_python.wsgi.base_uri") or ""
    return int(_modpy.wsgi_run(req, _application(spec), base_uri, spec))
