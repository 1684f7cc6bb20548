"""mod_python-style handlers, served unchanged by mod_python 3.5 and by mod_py.

  PythonHandler mp_app::hello   GET  /hello -> b"Hello, World!\\n" (text/plain)
  PythonHandler mp_app::big     GET  /64k   -> 65536 bytes
  PythonHandler mp_app::echo    POST /echo  -> the request body, read whole, written back

Same bytes as apps/mod_bench.c and apps/wsgi_app.py.
"""
try:
    from modpy import apache  # mod_py
except ImportError:
    from mod_python import apache  # mod_python 3.5

HELLO = b"Hello, World!\n"
BIG = (b"0123456789abcdef" * 4096)[:65536]


def _send(req, body: bytes, ctype: str) -> int:
    req.content_type = ctype
    req.set_content_length(len(body))
    req.write(body)
    return apache.OK


def hello(req) -> int:
    return _send(req, HELLO, "text/plain")


def big(req) -> int:
    return _send(req, BIG, "application/octet-stream")


def echo(req) -> int:
    return _send(req, req.read(), "application/octet-stream")
