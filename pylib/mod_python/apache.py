"""mod_python.apache under mod_py: the same objects as modpy.apache, plus the few 3.5 names
that are plain Python (``table``/``make_table``, a standalone table)."""
from __future__ import annotations

from typing import Any, Iterator, Optional

from modpy.apache import *  # noqa: F401,F403
from modpy.apache import log_error, main_server, mpm_query  # noqa: F401


class table:
    """A standalone case-insensitive, multi-valued table (mod_python's ``apache.table()``,
    for tables not tied to a request: request tables are modpy.apache.Table)."""

    def __init__(self, items: Any = None) -> None:
        self._items: list[tuple[str, str]] = []
        if items:
            for k, v in (items.items() if hasattr(items, "items") else items):
                self.add(k, v)

    def add(self, key: str, value: str) -> None:
        self._items.append((key, value))

    def __setitem__(self, key: str, value: str) -> None:
        self.__delitem__(key) if key in self else None
        self._items.append((key, value))

    def __delitem__(self, key: str) -> None:
        k = key.lower()
        self._items = [(a, b) for a, b in self._items if a.lower() != k]

    def __getitem__(self, key: str) -> Any:
        found = [v for k, v in self._items if k.lower() == key.lower()]
        if not found:
            raise KeyError(key)
        return found[0] if len(found) == 1 else found

    def get(self, key: str, default: Optional[Any] = None) -> Any:
        try:
            return self[key]
        except KeyError:
            return default

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and any(k.lower() == key.lower() for k, _ in self._items)

    has_key = __contains__

    def keys(self) -> list[str]:
        return [k for k, _ in self._items]

    def values(self) -> list[str]:
        return [v for _, v in self._items]

    def items(self) -> list[tuple[str, str]]:
        return list(self._items)

    def __iter__(self) -> Iterator[str]:
        return iter(self.keys())

    def __len__(self) -> int:
        return len(self._items)

    def __repr__(self) -> str:
        return f"table({self._items!r})"


make_table = table


# ---- the module-level functions of mod_python 3.5's apache ----

import importlib.util as _ilu
import os as _os
import sys as _sys
import threading as _threading

import _modpy as _native

_imports_lock = _threading.RLock()
_imported: dict[str, float] = {}


def server_root() -> str:
    """ServerRoot (ap_server_root)."""
    return _native.server_root()


def exists_config_define(name: str) -> bool:
    """Whether httpd was started with ``-D name``."""
    return _native.exists_config_define(name)


def import_module(module_name: str, autoreload: Optional[int] = None, log: Optional[int] = None,
                  path: Optional[list[str]] = None) -> Any:
    """Imports `module_name` (from `path` first, if given), importing it again when its file
    changed (autoreload, the default as in 3.5)."""
    with _imports_lock:
        module = _sys.modules.get(module_name)
        file = getattr(module, "__file__", None) if module else None
        if module is not None and file and (autoreload is None or autoreload):
            try:
                changed = _os.stat(file).st_mtime != _imported.get(module_name)
            except OSError:
                changed = False
            if changed and module_name in _imported:
                del _sys.modules[module_name]
                module = None
        if module is not None:
            return module
        if path:
            for d in path:
                for candidate in (_os.path.join(d, module_name + ".py"),
                                  _os.path.join(d, module_name, "__init__.py")):
                    if _os.path.isfile(candidate):
                        spec = _ilu.spec_from_file_location(module_name, candidate)
                        if spec is None or spec.loader is None:
                            continue
                        module = _ilu.module_from_spec(spec)
                        _sys.modules[module_name] = module
                        try:
                            spec.loader.exec_module(module)
                        except BaseException:
                            del _sys.modules[module_name]
                            raise
                        _imported[module_name] = _os.stat(candidate).st_mtime
                        if log:
                            log_error(f"mod_python: (Re)importing module '{module_name}'", APLOG_NOTICE)  # noqa: F405
                        return module
        import importlib
        module = importlib.import_module(module_name)
        file = getattr(module, "__file__", None)
        if file:
            try:
                _imported[module_name] = _os.stat(file).st_mtime
            except OSError:
                pass
        return module


def build_cgi_env(req: Any) -> dict[str, str]:
    """The CGI environment of the request (ap_add_common_vars + ap_add_cgi_vars)."""
    req.add_common_vars()
    req.add_cgi_vars()
    env = dict(req.subprocess_env.items())
    if req.path_info:
        env["PATH_INFO"] = req.path_info
    return env


def register_cleanup(callable: Any, data: Any = None) -> None:
    """Runs callable(data) when this Apache child exits."""
    server = main_server()
    if server is not None:
        server.register_cleanup(None, callable, data)


def stat(fname: str, wanted: int = 0) -> _os.stat_result:
    """The file's status (os.stat; mod_python's apr_finfo fields by the same meaning)."""
    return _os.stat(fname)


def config_tree() -> tuple:
    """mod_python's parsed configuration tree: not available (mod_py does not keep it)."""
    return ()


def _check_version() -> None:
    # mod_python's C module warned when the Python package beside it was another release
    # (a stale copy earlier on sys.path); mod_py keeps that warning, in the same words.
    from . import version
    if version.version != _MOD_PYTHON_API:
        log_error("WARNING: mod_python version mismatch, expected '%s', found '%s'."
                  % (_MOD_PYTHON_API, version.version), APLOG_WARNING)
        log_error("WARNING: mod_python modules location '%s'." % _os.path.dirname(version.__file__),
                  APLOG_WARNING)


_MOD_PYTHON_API = "3.5.0"
_check_version()
