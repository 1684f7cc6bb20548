"""mod_python.publisher (the 3.5 handler): ``/path/module.py/name`` calls ``name`` of the
module with the form's fields as arguments and sends what it returns.

    <Directory /srv/site>
        SetHandler mod_python
        PythonHandler mod_python.publisher
    </Directory>

Traversal follows 3.5's rules: no path component may start with ``_`` (403); only the module
and plain objects (instances) can be traversed; modules, classes and other types are neither
traversed nor published (403); a missing name is 404. ``__auth__`` (a {user: password} dict,
or a function(req, user, password)), ``__access__`` (a list of users, or a function(req,
user)) and ``__auth_realm__`` of the module and of every object on the way are checked
(401/403), the innermost last.
"""
from __future__ import annotations

import base64
import importlib.util
import os
import sys
import threading
import time
import types
import weakref
from typing import Any, Optional

from . import apache, util

_lock = threading.Lock()
_modules: dict[str, tuple[float, types.ModuleType]] = {}

# type -> (traversable, publishable), as 3.5's tp_rules
_RULES: dict[type, tuple[bool, bool]] = {
    types.ModuleType: (False, False),
    type: (False, False),
    types.FunctionType: (False, True),
    types.MethodType: (False, True),
    types.BuiltinFunctionType: (False, False),
    types.BuiltinMethodType: (False, False),
    types.GeneratorType: (False, False),
    types.CodeType: (False, False),
    types.FrameType: (False, False),
    types.TracebackType: (False, False),
}


def _rules(obj: Any) -> tuple[bool, bool]:
    for t, r in _RULES.items():
        if isinstance(obj, t):
            return r
    # Plain data (str, int, ...) is published as text; instances can also be traversed.
    if isinstance(obj, (str, bytes, int, float, list, tuple, dict)):
        return (False, True)
    return (True, True)


def _load(path: str, mtime: float) -> types.ModuleType:
    """The module of `path` (modified at `mtime`), executed again when its file changes."""
    with _lock:
        cached = _modules.get(path)
        if cached and cached[0] == mtime:
            return cached[1]
        name = "_mp_publisher_" + str(abs(hash(path)))
        spec = importlib.util.spec_from_file_location(name, path)
        if spec is None or spec.loader is None:
            raise apache.SERVER_RETURN(apache.HTTP_NOT_FOUND)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        _modules[path] = (mtime, module)
        sys.modules.pop(name, None)
        return module


def _credentials(req: Any) -> tuple[Optional[str], Optional[str]]:
    header = req.headers_in.get("authorization") or ""
    scheme, _, data = header.partition(" ")
    if scheme.lower() != "basic":
        return None, None
    try:
        user, _, pw = base64.b64decode(data.strip()).decode("utf-8", "replace").partition(":")
    except ValueError:
        return None, None
    return user, pw


_FORBID = object()  # a function-body __auth__/__access__ we cannot evaluate: deny


def _nested_function(func: types.FunctionType, name: str) -> Any:
    """The function `name` defined in func's body, made from its code object with func's
    globals (as 3.5 did); _FORBID if it needs the enclosing function's variables."""
    for const in func.__code__.co_consts:
        if isinstance(const, types.CodeType) and const.co_name == name:
            return _FORBID if const.co_freevars else types.FunctionType(const, func.__globals__, name)
    return _FORBID


# function -> its body's settings (read once per function: parsing its source is slow).
_body_settings: "weakref.WeakKeyDictionary[types.FunctionType, dict[str, Any]]" = weakref.WeakKeyDictionary()


def _function_body_settings(func: types.FunctionType) -> dict[str, Any]:
    """__auth__, __access__ and __auth_realm__ assigned (literal values) or defined (nested
    functions) in a function's body, as 3.5 sites write them; anything else denies, never grants."""
    found = _body_settings.get(func)
    if found is None:
        found = _body_settings[func] = _read_body_settings(func)
    return found


def _read_body_settings(func: types.FunctionType) -> dict[str, Any]:
    code = func.__code__
    wanted = {"__auth__", "__access__", "__auth_realm__"} & set(code.co_varnames)
    if not wanted:
        return {}
    import ast
    import inspect
    import textwrap
    found: dict[str, Any] = {name: _FORBID for name in wanted}
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(func)))
        body = tree.body[0].body if tree.body and hasattr(tree.body[0], "body") else []
        for stmt in body:
            if isinstance(stmt, ast.FunctionDef) and stmt.name in wanted:
                found[stmt.name] = _nested_function(func, stmt.name)
            elif isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Name):
                name = stmt.targets[0].id
                if name in wanted:
                    try:
                        found[name] = ast.literal_eval(stmt.value)
                    except ValueError:
                        found[name] = _FORBID
    except (OSError, SyntaxError, TypeError):
        pass
    return found


def _check_auth(req: Any, obj: Any, realm: str) -> str:
    """__auth__ / __access__ of one object on the path; returns the realm in force."""
    func = obj.__func__ if isinstance(obj, types.MethodType) else obj
    if isinstance(func, types.FunctionType):
        settings = {**_function_body_settings(func), **{k: v for k, v in func.__dict__.items()
                                                         if k in ("__auth__", "__access__", "__auth_realm__")}}
    else:
        settings = {k: getattr(obj, k, None) for k in ("__auth__", "__access__", "__auth_realm__")}
    if _FORBID in settings.values():
        req.log_error(f"mod_python.publisher: {req.uri}: __auth__/__access__ in the function's body is "
                      "neither a literal nor a function without closure; denied",
                      apache.APLOG_ERR)
        raise apache.SERVER_RETURN(apache.HTTP_FORBIDDEN)
    auth, access = settings.get("__auth__"), settings.get("__access__")
    realm = settings.get("__auth_realm__") or realm
    if auth is None and access is None:
        return realm
    user, pw = _credentials(req)
    if auth is not None:
        if callable(auth):
            ok = bool(user is not None and auth(req, user, pw))
        elif isinstance(auth, dict):
            ok = user is not None and auth.get(user) is not None and auth.get(user) == pw
        else:
            ok = False
        if not ok:
            req.err_headers_out["WWW-Authenticate"] = f'Basic realm="{realm}"'
            req.log_error(f"mod_python.publisher: authorization failed for {req.uri}", apache.APLOG_NOTICE)
            raise apache.SERVER_RETURN(apache.HTTP_UNAUTHORIZED)
        req.user = user
    if access is not None:
        allowed = access(req, user) if callable(access) else (user in access)
        if not allowed:
            req.log_error(f"mod_python.publisher: access denied to {req.uri} for {user!r}", apache.APLOG_NOTICE)
            raise apache.SERVER_RETURN(apache.HTTP_FORBIDDEN)
    return realm


def resolve_object(req: Any, obj: Any, object_str: str, realm: str = "unknown") -> Any:
    """Walks `object_str` ("a.b.c") from the module `obj`, with 3.5's rules."""
    realm = _check_auth(req, obj, realm)
    first = True
    for part in object_str.split("."):
        if not part or part.startswith("_"):
            req.log_error(f"mod_python.publisher: cannot traverse {part!r} in {req.unparsed_uri}: "
                          "it starts with an underscore", apache.APLOG_WARNING)
            raise apache.SERVER_RETURN(apache.HTTP_FORBIDDEN)
        if not first and not _rules(obj)[0]:
            req.log_error(f"mod_python.publisher: cannot traverse {part!r} in {req.unparsed_uri}: "
                          f"{type(obj).__name__} is not traversable", apache.APLOG_WARNING)
            raise apache.SERVER_RETURN(apache.HTTP_FORBIDDEN)
        first = False
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise apache.SERVER_RETURN(apache.HTTP_NOT_FOUND) from None
        realm = _check_auth(req, obj, realm)
    if not _rules(obj)[1]:
        req.log_error(f"mod_python.publisher: {req.unparsed_uri} names a {type(obj).__name__}, "
                      "which is not published", apache.APLOG_WARNING)
        raise apache.SERVER_RETURN(apache.HTTP_FORBIDDEN)
    return obj


# (req.filename, req.path_info) -> (when, _target's answer), for a second as util.file_mtime.
_targets: dict[tuple[str, Optional[str]], tuple[float, tuple[str, float, str]]] = {}


def _target(req: Any) -> tuple[str, float, str]:
    """(module file, its mtime, dotted object path) of the request, by 3.5's rules: /dir/ is
    dir's index.py, /mod and /mod.py are mod.py, and a name with no such file is an object of
    the directory's index.py (/foobar calls index.foobar); one trailing slash is dropped."""
    filename = req.filename
    if filename is None:
        raise apache.SERVER_RETURN(apache.HTTP_NOT_FOUND)
    key = (filename, req.path_info)
    now = time.monotonic()
    known = _targets.get(key)
    if known is not None and now - known[0] < 1.0:
        return known[1]
    found = _find_target(filename, key[1])
    if len(_targets) > 10000:
        _targets.clear()
    _targets[key] = (now, found)
    return found


def _find_target(filename: str, path_info: Optional[str]) -> tuple[str, float, str]:
    directory, name = os.path.split(filename)
    name = name or "index"
    if name.endswith(".py"):
        name = name[:-3]
    func_path = (path_info or "")[1:]
    if func_path.endswith("/"):
        func_path = func_path[:-1]
    path = os.path.join(directory, name + ".py")
    mtime = util.file_mtime(path)
    if mtime is None:
        func_path = f"{name}/{func_path}" if func_path else name
        path = os.path.join(directory, "index.py")
        mtime = util.file_mtime(path)
        if mtime is None:
            raise apache.SERVER_RETURN(apache.HTTP_NOT_FOUND)
    return os.path.normpath(path), mtime, (func_path or "index").replace("/", ".")


def handler(req: Any) -> int:
    path, mtime, func_path = _target(req)
    if req.filename != path:
        req.filename = path
    module = _load(path, mtime)
    ct_before = req.content_type
    req.form = util.FieldStorage(req, keep_blank_values=1)
    obj = resolve_object(req, module, func_path)
    result = util.apply_fs_data(obj, req.form, req=req) if callable(obj) else obj
    if result is None:
        return apache.OK
    if isinstance(result, bytes):
        data = result
    else:
        text = str(result)
        data = text.encode("utf-8")
        if req.content_type == ct_before:  # the published object did not choose one
            head = text.lstrip()[:100].lower()
            req.content_type = ("text/html" if head.startswith(("<html", "<!doctype"))
                                else "text/plain") + "; charset=utf-8"
    # Unflushed: the whole result goes out with the end of the response, in one pass down the
    # filters and with a Content-Length (a flushed write makes Apache send it chunked).
    req.write(data, 0)
    return apache.OK
