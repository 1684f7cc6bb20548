"""How mod_py imports handler modules.

A handler configured in a <Directory> (or .htaccess) whose module file lives in that directory
is loaded from that file under a name of its own (``_modpy_<hash of the path>``), so two
directories may each have their own ``app.py`` without colliding in the one interpreter
(mod_python 3.3+ keys modules by path the same way). Anything else is a normal import.
"""
from __future__ import annotations

import hashlib
import importlib
import importlib.util
import os
import sys
import threading
from types import ModuleType

# Serialises first loads and reloads of path-keyed modules (normal imports have Python's own
# per-module locks).
_lock = threading.RLock()


def module_file(name: str, directory: str) -> str | None:
    """The file of top-level module `name` in `directory`, if there is one."""
    if "." in name:
        return None
    for candidate in (os.path.join(directory, name + ".py"), os.path.join(directory, name, "__init__.py")):
        if os.path.isfile(candidate):
            return candidate
    return None


def unique_name(path: str) -> str:
    return "_modpy_" + hashlib.sha1(os.path.abspath(path).encode()).hexdigest()[:16]


def import_handler(name: str, directory: str | None) -> ModuleType:
    """The module of handler `name` configured in `directory` (None: from sys.path)."""
    if directory:
        path = module_file(name, directory)
        if path is not None:
            return _load_file(path)
    return importlib.import_module(name)


def _load_file(path: str) -> ModuleType:
    key = unique_name(path)
    with _lock:
        module = sys.modules.get(key)
        if module is not None:
            return module
        spec = importlib.util.spec_from_file_location(key, path)
        if spec is None or spec.loader is None:
            raise ImportError(f"cannot load handler module from {path}")
        module = importlib.util.module_from_spec(spec)
        sys.modules[key] = module
        try:
            spec.loader.exec_module(module)
        except BaseException:
            del sys.modules[key]
            raise
        return module


def reload(module: ModuleType) -> ModuleType:
    """Re-executes a changed handler module (PythonAutoReload)."""
    with _lock:
        return importlib.reload(module)
