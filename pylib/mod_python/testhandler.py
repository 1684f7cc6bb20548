"""mod_python.testhandler: a page describing the request and the server (as 3.5's)."""
from __future__ import annotations

import html
import sys
from typing import Any

from . import apache


def _table(title: str, rows: list[tuple[str, Any]]) -> str:
    body = "".join(f"<tr><td>{html.escape(str(k))}</td><td>{html.escape(str(v))}</td></tr>" for k, v in rows)
    return f"<h2>{html.escape(title)}</h2><table border='1'>{body}</table>"


def handler(req: Any) -> int:
    req.content_type = "text/html"
    fields = ["the_request", "method", "uri", "filename", "path_info", "args", "protocol",
              "hostname", "handler", "content_type"]
    parts = [
        "<html><head><title>mod_python test page</title></head><body>",
        "<h1>mod_python is working (mod_py)</h1>",
        _table("Request", [(f, getattr(req, f, None)) for f in fields]),
        _table("Headers in", list(req.headers_in.items())),
        _table("Options", list(req.get_options().items())),
        _table("Python", [("version", sys.version), ("path", sys.path)]),
        "</body></html>",
    ]
    req.write("".join(parts).encode())
    return apache.OK
