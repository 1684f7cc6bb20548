"""The same three responses as a WSGI application (mod_wsgi embedded mode, for reference)."""
from typing import Callable, Iterable

HELLO = b"Hello, World!\n"
BIG = (b"0123456789abcdef" * 4096)[:65536]


def application(environ: dict, start_response: Callable) -> Iterable[bytes]:
    path = environ.get("PATH_INFO", "")
    if path == "/hello":
        body, ctype = HELLO, "text/plain"
    elif path == "/64k":
        body, ctype = BIG, "application/octet-stream"
    elif path == "/echo":
        n = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(n) if n else b""
        ctype = "application/octet-stream"
    else:
        start_response("404 Not Found", [("Content-Type", "text/plain"), ("Content-Length", "10")])
        return [b"not found\n"]
    start_response("200 OK", [("Content-Type", ctype), ("Content-Length", str(len(body)))])
    return [body]
