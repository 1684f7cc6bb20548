"""Loading WSGI script files the way mod_wsgi does: each script file is executed as a module
of its own, named ``_mod_wsgi_<md5 of the path>``, so scripts never collide; a changed script
is executed again in a fresh module (WSGIScriptReloading On)."""
from __future__ import annotations

import hashlib
import importlib.machinery
import importlib.util
import sys
import threading
from types import ModuleType

_lock = threading.RLock()


def module_name(path: str) -> str:
    return "_mod_wsgi_" + hashlib.md5(path.encode()).hexdigest()


def load_script(path: str, fresh: bool) -> ModuleType:
    """The module of WSGI script `path`; `fresh` re-executes it (its file changed)."""
    name = module_name(path)
    with _lock:
        module = sys.modules.get(name)
        if module is not None and not fresh:
            return module
        loader = importlib.machinery.SourceFileLoader(name, path)
        spec = importlib.util.spec_from_file_location(name, path, loader=loader)
        if spec is None:
            raise ImportError(f"cannot load WSGI script {path}")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        try:
            loader.exec_module(module)
        except BaseException:
            sys.modules.pop(name, None)
            raise
        return module
