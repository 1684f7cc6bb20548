"""mod_python.apache under mod_py: the same objects as modpy.apache, plus the few 3.5 names
that are plain Python (``table``/``make_table``, a standalone table)."""
from __future__ import annotations

from typing import Any, Iterator, Optional

from modpy.apache import *  # noqa: F401,F403
from modpy.apache import log_error, mpm_query  # noqa: F401
from modpy import apache as _modpy_apache


class table:
    """A standalone case-insensitive, multi-valued table (mod_python's ``apache.table()``,
    for tables not tied to a request: request tables are modpy.apache.Table). Keys and
    values are strings (others are converted with str(), as apr tables hold only strings)."""

    def __init__(self, items: Any = None) -> None:
        self._items: list[tuple[str, str]] = []
        if items is not None:
            self.update(items)

    @staticmethod
    def _fold(key: object) -> str:
        return str(key).lower()

    def add(self, key: object, value: object) -> None:
        """apr_table_add: one more value for key."""
        self._items.append((str(key), str(value)))

    def __setitem__(self, key: object, value: object) -> None:
        del self[key]
        self.add(key, value)

    def __delitem__(self, key: object) -> None:
        k = self._fold(key)
        self._items = [(a, b) for a, b in self._items if a.lower() != k]

    def __getitem__(self, key: object) -> Any:
        k = self._fold(key)
        found = [v for a, v in self._items if a.lower() == k]
        if not found:
            raise KeyError(key)
        return found[0] if len(found) == 1 else found

    def get(self, key: object, default: Optional[Any] = None) -> Any:
        try:
            return self[key]
        except KeyError:
            return default

    def setdefault(self, key: object, default: object = "") -> Any:
        if key not in self:
            self[key] = default
        return self[key]

    def update(self, other: Any) -> None:
        """As dict.update of mod_python's table: a mapping (anything with keys() and [])."""
        for k in other.keys():
            self[k] = other[k]

    def clear(self) -> None:
        self._items = []

    def copy(self) -> "table":
        t = table()
        t._items = list(self._items)
        return t

    def popitem(self) -> tuple[str, str]:
        if not self._items:
            raise KeyError("popitem(): table is empty")
        return self._items.pop()

    def __contains__(self, key: object) -> bool:
        k = self._fold(key)
        return any(a.lower() == k for a, _ in self._items)

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

    def __eq__(self, other: object) -> bool:
        # Equal to another table or a mapping with the same keys (in any case) and values.
        if not hasattr(other, "items"):
            return NotImplemented
        mine = sorted((k.lower(), v) for k, v in self._items)
        theirs = sorted((str(k).lower(), str(v)) for k, v in other.items())
        return mine == theirs

    __hash__ = None  # type: ignore[assignment]  # mutable

    def __repr__(self) -> str:
        return "{" + ", ".join(f"{k!r}: {v!r}" for k, v in self._items) + "}"


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
    server = _modpy_apache.main_server()
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

# mod_python's module attributes: the main server object (not a function, as in modpy.apache)
# and the name of the interpreter this module runs in (mod_py runs one).
main_server = _modpy_apache.main_server()  # type: ignore[assignment]  # star-imported as a function

# mod_python code checks the types of its objects by name (str(type(req.server)) is
# "<class 'mp_server'>"); mod_py's classes answer to mod_python's names once this module is
# imported.
for _cls, _name in ((_modpy_apache.Request, "mp_request"), (_modpy_apache.Connection, "mp_conn"),
                    (_modpy_apache.Server, "mp_server"), (_modpy_apache.Table, "mp_table")):
    # A type of module "builtins" is shown by its __name__ alone.
    _cls.__name__ = _cls.__qualname__ = _name
    _cls.__module__ = "builtins"
del _cls, _name


def __getattr__(name: str) -> Any:
    # mod_python's apache.interpreter: the name of the interpreter the caller runs in, which
    # mod_python gives per virtual host (req.interpreter); outside a request, the main one.
    if name == "interpreter":
        req = _native.current_request()
        return req.interpreter if req is not None else _modpy_apache.MAIN_INTERPRETER
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# Indexes into req.finfo and req.parsed_uri, as in mod_python.
(FINFO_MODE, FINFO_INO, FINFO_DEV, FINFO_NLINK, FINFO_UID, FINFO_GID, FINFO_SIZE, FINFO_ATIME,
 FINFO_MTIME, FINFO_CTIME, FINFO_FNAME, FINFO_NAME, FINFO_FILETYPE) = range(13)
(URI_SCHEME, URI_HOSTINFO, URI_USER, URI_PASSWORD, URI_HOSTNAME, URI_PORT, URI_PATH, URI_QUERY,
 URI_FRAGMENT) = range(9)
# mod_python sets sys.argv for code that reads sys.argv[0].
if _sys.argv in ([], [""]):
    _sys.argv[:] = ["mod_python"]
