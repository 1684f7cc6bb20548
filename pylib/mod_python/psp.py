"""mod_python.psp (the 3.5 API): Python Server Pages.

    AddHandler mod_python .psp
    PythonHandler mod_python.psp

A page mixes text with ``<% code %>``, ``<%= expression %>``, ``<%@ include file="x" %>`` and
``<%-- comment --%>``. As in 3.5, the indentation of a code block's last line is the
indentation of the text that follows it, which is how loops and conditions span text:

    <% for n in range(3):
        # this indent persists %>
    <p>repeated</p>
    <% # back to column 0 %>

The page runs with ``req``, ``psp`` (this module's PSPInterface), ``form`` (a FieldStorage,
made only if the page uses the name) and ``session`` (a Session, made and saved only if the
page uses it). Pages are compiled once per file modification.
"""
from __future__ import annotations

import os
import re
import sys
import threading
import types
from typing import Any, Optional

from . import apache, util

_TOKEN = re.compile(r"<%--.*?--%>|<%@.*?%>|<%=.*?%>|<%.*?%>", re.S)
_INCLUDE = re.compile(r'<%@\s*include\s+file\s*=\s*"([^"]+)"\s*%>', re.S)

_cache: dict[str, tuple[float, types.CodeType]] = {}
_lock = threading.Lock()


class PSPError(Exception):
    pass


def _expand_includes(text: str, base: Optional[str], depth: int = 0) -> str:
    if depth > 16:
        raise PSPError("includes nested too deep (a loop?)")

    def include(m: "re.Match[str]") -> str:
        name = m.group(1)
        path = name if os.path.isabs(name) or base is None else os.path.join(base, name)
        with open(path, encoding="utf-8") as f:
            return _expand_includes(f.read(), os.path.dirname(path), depth + 1)

    return _INCLUDE.sub(include, text)


def parse(text: str, base: Optional[str] = None) -> str:
    """The Python source of a PSP page."""
    text = _expand_includes(text, base)
    out: list[str] = []
    indent = ""
    pos = 0

    def emit_text(s: str) -> None:
        if s:
            out.append(f"{indent}req.write({s!r}, 0)")

    for m in _TOKEN.finditer(text):
        emit_text(text[pos:m.start()])
        pos = m.end()
        tok = m.group(0)
        if tok.startswith("<%--"):
            continue
        if tok.startswith("<%@"):
            raise PSPError(f"unknown directive {tok[:60]!r}")
        if tok.startswith("<%="):
            out.append(f"{indent}req.write(str({tok[3:-2].strip()}), 0)")
            continue
        code = tok[2:-2]
        lines = code.split("\n")
        # The block's own first line starts right after "<%": strip it; later lines keep the
        # indentation they were written with (relative to the least indented of them).
        first = lines[0].strip()
        rest = [l.rstrip() for l in lines[1:]]
        # Code on the "<%" line sits at column 0 and the next lines keep their columns; a
        # block opened on a line of its own is taken relative to its least indented line.
        margin = 0 if first else min((len(l) - len(l.lstrip()) for l in rest if l.strip()), default=0)
        block = ([first] if first else []) + [l[margin:] for l in rest]
        block = [l for l in block if l.strip()] or [""]
        for l in block:
            if l:
                out.append(l)
        last = block[-1]
        indent = last[: len(last) - len(last.lstrip())]
        if last.rstrip().endswith(":"):
            indent += "    "
            out.append(f"{indent}pass")
    emit_text(text[pos:])
    return "\n".join(out) + "\n"


def _compile(path: str, mtime: float) -> types.CodeType:
    with _lock:
        cached = _cache.get(path)
        if cached and cached[0] == mtime:
            return cached[1]
        with open(path, encoding="utf-8") as f:
            source = parse(f.read(), os.path.dirname(path))
        code = compile(source, path, "exec")
        _cache[path] = (mtime, code)
        return code


class PSPInterface:
    """The ``psp`` object of a page."""

    def __init__(self, req: Any, filename: Optional[str], form: Any = None) -> None:
        self.req, self.filename, self.form = req, filename, form
        self.error_page: Optional[PSP] = None

    def set_error_page(self, page: str) -> None:
        """The page run instead when this one raises (it gets ``exception``, the
        sys.exc_info() triple); a leading ``/`` means the document root."""
        if page.startswith("/"):
            path = self.req.document_root() + page
        else:
            path = os.path.join(os.path.dirname(self.filename or self.req.filename), page)
        self.error_page = PSP(self.req, path)

    def apply_data(self, obj: Any) -> Any:
        if self.form is None:
            self.form = _form(self.req)
        return util.apply_fs_data(obj, self.form, req=self.req)

    def redirect(self, location: str, permanent: int = 0) -> None:
        util.redirect(self.req, location, permanent)


def _form(req: Any) -> util.FieldStorage:
    """The request's form, read once and kept as req.form (the body can be read only once)."""
    form = getattr(req, "form", None)
    if form is None:
        form = req.form = util.FieldStorage(req, keep_blank_values=1)
    return form


class PSP:
    """A page from a file (``filename``, default the request's) or a string."""

    def __init__(self, req: Any, filename: Optional[str] = None, string: Optional[str] = None,
                 vars: Optional[dict[str, Any]] = None) -> None:
        self.req = req
        self.filename = filename or (None if string is not None else req.filename)
        self.string = string
        self.vars = dict(vars or {})
        if self.filename and not os.path.isabs(self.filename) and req.filename:
            self.filename = os.path.join(os.path.dirname(req.filename), self.filename)

    def code(self) -> types.CodeType:
        if self.string is not None:
            return compile(parse(self.string), "<string>", "exec")
        filename = self.filename
        mtime = util.file_mtime(filename) if filename else None
        if not filename or mtime is None:
            raise apache.SERVER_RETURN(apache.HTTP_NOT_FOUND)
        return _compile(filename, mtime)

    def display_code(self) -> str:
        if self.string is not None:
            return parse(self.string)
        with open(self.filename or "", encoding="utf-8") as f:
            return parse(f.read(), os.path.dirname(self.filename or ""))

    def run(self, vars: Optional[dict[str, Any]] = None) -> None:
        code = self.code()
        req = self.req
        names = set(code.co_names)
        # The session and form live on req (as in 3.5), so that an error page or a page run
        # from a handler uses the same ones: a second Session of the id would wait forever
        # for the first one's lock, and the body can be read only once.
        session = None
        if "session" in names and getattr(req, "session", None) is None:
            from . import Session
            session = req.session = Session.Session(req)
        form = _form(req) if "form" in names else getattr(req, "form", None)
        psp = PSPInterface(req, self.filename, form)
        g: dict[str, Any] = {"__builtins__": __builtins__, "req": req, "psp": psp, "form": form,
                             "session": getattr(req, "session", None), **self.vars, **(vars or {})}
        if not req.content_type or req.content_type in ("application/x-httpd-psp", "text/x-psp"):
            req.content_type = "text/html"
        try:
            try:
                exec(code, g)
                # Opening a session changes it (its access time): it is always saved.
                if getattr(req, "session", None) is not None:
                    req.session.save()
            except apache.SERVER_RETURN:
                raise
            except Exception:
                if psp.error_page is None:
                    raise
                psp.error_page.run({"exception": sys.exc_info()})
        finally:
            # A session opened here is not left on req, unlocked, for later code to use.
            if session is not None:
                session.unlock()
                del req.session

    def __str__(self) -> str:
        """Runs the page (what 3.5 did, so a published function may return a PSP)."""
        self.run()
        return ""


def handler(req: Any) -> int:
    PSP(req).run()
    return apache.OK
