"""mod_python.util (the 3.5 API) over mod_py's request object: FieldStorage, Field,
parse_qs / parse_qsl, redirect, apply_fs_data.

Form values are ``str`` (decoded as UTF-8; undecodable bytes kept as surrogates, so
``value.encode("utf-8", "surrogateescape")`` gives the bytes back). A multipart body is read
a line of at most 64 KiB at a time and each uploaded file goes straight to a temporary file,
so an upload of any size keeps the process's memory flat.
"""
from __future__ import annotations

import inspect
import io
import os
import re
import stat
import tempfile
import time
from typing import IO, Any, Callable, Iterator, Optional, Union
from urllib.parse import parse_qsl as _std_parse_qsl

from . import apache

__all__ = ["FieldStorage", "Field", "StringField", "parse_qs", "parse_qsl", "parse_header",
           "redirect", "apply_fs_data"]

# Longest line read from a multipart body at once (mod_python's readBlockSize).
readBlockSize = 65368


def _text(b: Union[bytes, str]) -> str:
    return b if isinstance(b, str) else b.decode("utf-8", "surrogateescape")


def parse_qsl(qs: Union[str, bytes], keep_blank_values: int = 0, strict_parsing: int = 0) -> list[tuple[str, str]]:
    """A query string as a list of (name, value), in order."""
    return _std_parse_qsl(_text(qs), keep_blank_values=bool(keep_blank_values),
                          strict_parsing=bool(strict_parsing), errors="surrogateescape")


def parse_qs(qs: Union[str, bytes], keep_blank_values: int = 0, strict_parsing: int = 0) -> dict[str, list[str]]:
    """A query string as {name: [values]}."""
    out: dict[str, list[str]] = {}
    for k, v in parse_qsl(qs, keep_blank_values, strict_parsing):
        out.setdefault(k, []).append(v)
    return out


def parse_header(line: str) -> tuple[str, dict[str, str]]:
    """A Content-Type / Content-Disposition value: (main value lowercased, {option: value})."""
    parts = [p.strip() for p in line.split(";")]
    key = parts[0].lower()
    options: dict[str, str] = {}
    for p in parts[1:]:
        name, eq, value = p.partition("=")
        if not eq:
            continue
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] == '"':
            value = value[1:-1].replace('\\"', '"')
        options[name.strip().lower()] = value
    return key, options


class Field:
    """One form input held in a file (an upload): ``value`` reads it on demand."""

    def __init__(self, name: Optional[str], *args: Any, **kwargs: Any) -> None:
        self.name = name
        self.file: Optional[IO[bytes]] = None
        self.filename: Optional[str] = None
        self.type: Optional[str] = None
        self.type_options: dict[str, str] = {}
        self.disposition: Optional[str] = None
        self.disposition_options: dict[str, str] = {}
        self.headers: Any = {}

    @property
    def value(self) -> Optional[bytes]:
        if self.file is None:
            return None
        self.file.seek(0)
        data = self.file.read()
        self.file.seek(0)
        return data

    def __repr__(self) -> str:
        return f"Field({self.name!r}, {self.value!r})"


class StringField(str):
    """A form value held in memory: a ``str`` with the attributes of Field."""

    name: Optional[str] = None
    filename: Optional[str] = None
    headers: Any = {}
    type = "text/plain"
    type_options: dict[str, str] = {}
    disposition: Optional[str] = None
    disposition_options: dict[str, str] = {}

    @property
    def value(self) -> str:
        return str(self)

    @property
    def file(self) -> IO[bytes]:
        return io.BytesIO(self.encode("utf-8", "surrogateescape"))

    def __repr__(self) -> str:
        return f"Field({self.name!r}, {str(self)!r})"


# path -> (when looked at, its mtime or None): a file is looked at again after a second, as
# mod_py checks handler modules for PythonAutoReload. A stat per request would release the GIL
# each time, which costs a thread switch when other threads wait for it.
_seen: dict[str, tuple[float, Optional[float]]] = {}


def file_mtime(path: str) -> Optional[float]:
    """The modification time of regular file `path`, None if there is none (mod_py: the
    publisher and PSP look a file up at most once a second)."""
    now = time.monotonic()
    seen = _seen.get(path)
    if seen is not None and now - seen[0] < 1.0:
        return seen[1]
    try:
        st = os.stat(path)
        mtime: Optional[float] = st.st_mtime if stat.S_ISREG(st.st_mode) else None
    except OSError:
        mtime = None
    if len(_seen) > 10000:
        _seen.clear()
    _seen[path] = (now, mtime)
    return mtime



class FieldStorage:
    """The query string and the form body (urlencoded or multipart) of a request.

    ``fs["name"]`` is one StringField / Field, or a list of them when the name came several
    times; ``getfirst``, ``getlist``, ``get``, ``keys``, ``items``, ``in`` and ``len`` as in 3.5.
    """

    def __init__(self, req: Any, keep_blank_values: int = 0, strict_parsing: int = 0,
                 file_callback: Optional[Callable[[str], IO[bytes]]] = None,
                 field_callback: Optional[Callable[[], IO[bytes]]] = None) -> None:
        self.list: list[Union[Field, StringField]] = []
        self._dict: Optional[dict[str, list[Union[Field, StringField]]]] = None
        if req.args:
            for k, v in parse_qsl(req.args, keep_blank_values, strict_parsing):
                self.add_field(k, v)
        if req.method != "POST":
            return
        try:
            clen = int(req.headers_in["content-length"])
        except (KeyError, TypeError, ValueError):
            if "chunked" not in (req.headers_in.get("transfer-encoding") or "").lower():
                raise apache.SERVER_RETURN(apache.HTTP_LENGTH_REQUIRED)
            clen = -1
        ctype = req.headers_in.get("content-type") or "application/x-www-form-urlencoded"
        if ctype.lower().startswith("application/x-www-form-urlencoded"):
            body = req.read(clen) if clen >= 0 else req.read()
            for k, v in parse_qsl(body, keep_blank_values, strict_parsing):
                self.add_field(k, v)
            return
        if not ctype.lower().startswith("multipart/"):
            raise apache.SERVER_RETURN(apache.HTTP_NOT_IMPLEMENTED)
        _, opts = parse_header(ctype)
        boundary = opts.get("boundary")
        if not boundary:
            raise apache.SERVER_RETURN(apache.HTTP_BAD_REQUEST)
        delimiter = re.compile(b"--" + re.escape(boundary.encode("latin-1")) + b"(--)?[ \t]*\r?\n?$")
        self._multipart(req, delimiter, file_callback, field_callback)

    # -- multipart --

    def _multipart(self, req: Any, delimiter: "re.Pattern[bytes]",
                   file_callback: Optional[Callable[[str], IO[bytes]]],
                   field_callback: Optional[Callable[[], IO[bytes]]]) -> None:
        if self._copy_to_delimiter(req, delimiter, None):
            return
        while True:
            headers = apache.table()
            disp_options: dict[str, str] = {}
            disp, ctype = None, "text/plain"
            type_options: dict[str, str] = {}
            line = req.readline(readBlockSize)
            while line not in (b"\r\n", b"\n"):
                if not line:
                    return
                nextline = req.readline(readBlockSize)
                while nextline[:1] in (b" ", b"\t"):  # a folded header goes on
                    line, nextline = line.rstrip(b"\r\n") + nextline, req.readline(readBlockSize)
                name, sep, value = _text(line).partition(":")
                if not sep:
                    raise apache.SERVER_RETURN(apache.HTTP_BAD_REQUEST)
                line = nextline
                value = value.strip()
                headers.add(name.strip(), value)
                if name.strip().lower() == "content-disposition":
                    disp, disp_options = parse_header(value)
                elif name.strip().lower() == "content-type":
                    ctype, type_options = parse_header(value)
                    if "/" not in ctype:  # IE6 sends rubbish for files without a suffix
                        ctype = "application/octet-stream"
            is_file = "filename" in disp_options
            if is_file:
                sink = file_callback(disp_options["filename"]) if file_callback else tempfile.TemporaryFile("w+b")
            else:
                sink = field_callback() if field_callback else io.BytesIO()
            last = self._copy_to_delimiter(req, delimiter, sink)
            sink.seek(0)
            field: Union[Field, StringField]
            if is_file:
                field = Field(disp_options.get("name"))
                field.filename = disp_options["filename"]
                field.file = sink
            else:
                field = StringField(_text(sink.read()))
                field.name = disp_options.get("name")
            field.type, field.type_options = ctype, type_options
            field.disposition, field.disposition_options = disp, disp_options
            field.headers = headers
            self.list.append(field)
            self._dict = None
            if last:
                return

    @staticmethod
    def _copy_to_delimiter(req: Any, delimiter: "re.Pattern[bytes]", sink: Optional[IO[bytes]]) -> bool:
        """Copies lines into sink up to the next delimiter; True at the closing one (or EOF).
        The CRLF before a delimiter belongs to the delimiter, so it is held back a line."""
        held = b""
        while True:
            line = req.readline(readBlockSize)
            if not line:
                if sink is not None and held:
                    sink.write(held)
                return True
            m = delimiter.match(line)
            if m:
                return m.group(1) is not None
            if sink is not None:
                if line == b"\n" and held == b"\r":  # the rest of a CRLF split across blocks
                    held = b"\r\n"
                    continue
                if held:
                    sink.write(held)
                if line.endswith(b"\r\n"):
                    sink.write(line[:-2])
                    held = b"\r\n"
                elif line.endswith(b"\r"):  # a full block ending in CR: maybe half a CRLF
                    sink.write(line[:-1])
                    held = b"\r"
                else:
                    sink.write(line)
                    held = b""

    # -- the dictionary interface --

    def add_field(self, key: str, value: str) -> None:
        item = StringField(value)
        item.name = key
        self.list.append(item)
        self._dict = None

    @property
    def dictionary(self) -> dict[str, list[Union[Field, StringField]]]:
        if self._dict is None:
            d: dict[str, list[Union[Field, StringField]]] = {}
            for item in self.list:
                d.setdefault(item.name or "", []).append(item)
            self._dict = d
        return self._dict

    def __getitem__(self, key: str) -> Any:
        found = self.dictionary[key]
        return found[0] if len(found) == 1 else found

    def get(self, key: str, default: Any = None) -> Any:
        try:
            return self[key]
        except KeyError:
            return default

    def getfirst(self, key: str, default: Any = None) -> Any:
        found = self.dictionary.get(key)
        return found[0] if found else default

    def getlist(self, key: str) -> list[Any]:
        return list(self.dictionary.get(key, []))

    def keys(self) -> list[str]:
        return list(self.dictionary.keys())

    def has_key(self, key: str) -> bool:
        return key in self.dictionary

    __contains__ = has_key

    def __len__(self) -> int:
        return len(self.dictionary)

    def __iter__(self) -> Iterator[str]:
        return iter(self.keys())

    def items(self) -> list[tuple[Optional[str], Any]]:
        return [(item.name, item) for item in self.list]

    def clear(self) -> None:
        self.list = []
        self._dict = None


def redirect(req: Any, location: str, permanent: int = 0, text: Optional[str] = None) -> None:
    """Redirects the client (302, or 301 with permanent) and ends the request."""
    if req.sent_bodyct:
        raise OSError("Cannot redirect after headers have already been sent.")
    req.err_headers_out["Location"] = location
    req.status = apache.HTTP_MOVED_PERMANENTLY if permanent else apache.HTTP_MOVED_TEMPORARILY
    if text is None:
        req.content_type = "text/html"
        req.write(f'<p>The document has moved <a href="{location}">here</a></p>\n'.encode())
    else:
        req.write(text.encode() if isinstance(text, str) else text)
    raise apache.SERVER_RETURN(apache.DONE)


_accepts_cache: dict[Any, Optional[tuple[frozenset[str], bool]]] = {}


def _accepts(obj: Callable[..., Any]) -> Optional[tuple[frozenset[str], bool]]:
    """(keyword names, takes **kwargs) of a callable, cached per function (signature() is
    slow and the same functions are published again and again); None: none known."""
    key = getattr(obj, "__func__", obj)
    try:
        return _accepts_cache[key]
    except (KeyError, TypeError):
        pass
    try:
        params = inspect.signature(obj).parameters.values()
        found: Optional[tuple[frozenset[str], bool]] = (
            frozenset(p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)),
            any(p.kind is p.VAR_KEYWORD for p in params),
        )
    except (TypeError, ValueError):
        found = None
    try:
        if len(_accepts_cache) < 4096:
            _accepts_cache[key] = found
    except TypeError:
        pass
    return found


def apply_fs_data(obj: Callable[..., Any], fs: FieldStorage, **args: Any) -> Any:
    """Calls obj with the form's fields that match its parameters (all of them if it takes
    **kwargs); a name given several times becomes a list. Uploads are passed as Field."""
    for field in fs.list:
        if field.name is None:  # a part without a name cannot be a keyword argument
            continue
        val = field if field.filename else field.value
        args.setdefault(field.name, []).append(val)
    args = {k: (v[0] if isinstance(v, list) and len(v) == 1 else v) for k, v in args.items()}
    accepts = _accepts(obj)
    if accepts is None:
        return obj()
    names, any_kw = accepts
    if not any_kw:
        args = {k: v for k, v in args.items() if k in names}
    return obj(**args)
