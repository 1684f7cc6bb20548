"""mod_python-style handlers, served unchanged by mod_python 3.5 and by mod_py.

  PythonHandler mp_app::hello   GET  /hello -> b"Hello, World!\\n" (text/plain)
  PythonHandler mp_app::big     GET  /64k   -> 65536 bytes
  PythonHandler mp_app::echo    POST /echo  -> the request body, read whole, written back
  PythonOutputFilter mp_app::upper UPPER       upper-cases what passes (mod_python's filter object)
  PythonOutputFilter mp_app::upper_bb UPPERBB  the same with mod_py's brigade API (mod_py only)

Same bytes as apps/mod_bench.c and apps/wsgi_app.py.
"""
try:
    from modpy import apache  # mod_py
    from modpy.apache import Brigade, Bucket
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


def upper(filter):
    """mod_python's documented filter example, unchanged."""
    s = filter.read()
    while s:
        filter.write(s.upper())
        s = filter.read()
    if s is None:  # None = end of stream
        filter.close()


def upper_bb(f):
    """The same with buckets, as mod_case_filter does in C: each data bucket read once,
    upper-cased into one heap bucket and passed on; metadata (FLUSH, EOS) kept in order."""
    out = Brigade(f)
    for b in f.brigade:
        if b.is_metadata:
            b.remove()
            out.append(b)
        else:
            out.append(Bucket.heap(f, b.read().upper()))
            b.delete()
            f.pass_brigade(out)
    f.pass_brigade(out)
