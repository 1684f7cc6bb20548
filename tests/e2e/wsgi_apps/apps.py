"""WSGI applications for test_wsgi.py; every good one is served wrapped in wsgiref.validate."""
import json
import os
import sys
import time

VOLATILE = ("wsgi.input", "wsgi.errors", "wsgi.file_wrapper", "REMOTE_PORT", "mod_wsgi.request_start",
            "mod_wsgi.request_id", "mod_wsgi.thread_id", "mod_wsgi.thread_requests", "mod_wsgi.total_requests",
            "mod_wsgi.script_start", "mod_wsgi.queue_start", "mod_wsgi.daemon_connects",
            "mod_wsgi.daemon_restarts", "mod_wsgi.daemon_start", "mod_wsgi.request_handler")


def hello(environ, start_response):
    body = b"Hello, World!\n"
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


def env(environ, start_response):
    d = {}
    for k, v in environ.items():
        if k in VOLATILE:
            continue
        d[k] = v if isinstance(v, (str, int, bool)) else list(v) if isinstance(v, tuple) else repr(v)
    d["wsgi.input.type"] = type(environ["wsgi.input"]).__name__
    body = json.dumps(d, sort_keys=True).encode()
    start_response("200 OK", [("Content-Type", "application/json")])
    return [body]


def echo(environ, start_response):
    inp = environ["wsgi.input"]
    parts = []
    while True:  # read(size) until b"": works for chunked bodies too (wsgi.input_terminated)
        b = inp.read(65536)
        if not b:
            break
        parts.append(b)
    body = b"".join(parts)
    start_response("200 OK", [("Content-Type", "application/octet-stream"), ("Content-Length", str(len(body)))])
    return [body]


def echo_lines(environ, start_response):
    inp = environ["wsgi.input"]
    lines = [inp.readline()]
    lines += list(inp)
    start_response("200 OK", [("Content-Type", "application/json")])
    return [json.dumps([l.decode() for l in lines]).encode()]


def count(environ, start_response):
    """Reads the body in 1 MiB chunks; reports bytes and RSS."""
    def rss():
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    start = peak = rss()
    total = 0
    inp = environ["wsgi.input"]
    while True:
        b = inp.read(1 << 20)
        if not b:
            break
        total += len(b)
        if (total >> 20) % 32 == 0:
            peak = max(peak, rss())
    start_response("200 OK", [("Content-Type", "application/json")])
    return [json.dumps({"total": total, "start": start, "peak": max(peak, rss())}).encode()]


def stream(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    def gen():
        for i in range(200):
            yield b"chunk %03d\n" % i
    return gen()


def big(environ, start_response):
    """GET /big?mib=N streams N MiB in 64 KiB pieces."""
    n = int(environ.get("QUERY_STRING", "mib=1").split("=")[1])
    block = b"z" * 65536
    start_response("200 OK", [("Content-Type", "application/octet-stream"), ("Content-Length", str(n << 20))])
    def gen():
        for _ in range(n * 16):
            yield block
    return gen()


def empty(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return []


def status_custom(environ, start_response):
    start_response("299 Odd Code", [("Content-Type", "text/plain"), ("X-Latin", "caf\xe9")])
    return [b"odd"]


def no_content(environ, start_response):
    start_response("204 No Content", [])
    return [b""]


def cookies(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain"), ("Set-Cookie", "a=1"), ("Set-Cookie", "b=2")])
    return [environ.get("HTTP_COOKIE", "").encode()]


def redirect(environ, start_response):
    start_response("302 Found", [("Location", "/wsgi/hello"), ("Content-Type", "text/plain")])
    return [b"moved"]


def file_wrapper(environ, start_response):
    path = os.path.join(os.path.dirname(__file__), "data.bin")
    f = open(path, "rb")
    f.seek(10)
    start_response("200 OK", [("Content-Type", "application/octet-stream")])
    return environ["wsgi.file_wrapper"](f, 8192)


file_wrapper_raw = file_wrapper  # served without the validator's iterator wrapper


class Closing:
    """An iterable whose close() logs, to prove close() is called."""
    def __init__(self, environ, n=3, fail_at=None):
        self.errors = environ["wsgi.errors"]
        self.n, self.fail_at = n, fail_at
    def __iter__(self):
        for i in range(self.n):
            if i == self.fail_at:
                raise RuntimeError("failing mid-stream")
            time.sleep(0.01)
            yield b"part %d\n" % i
    def close(self):
        print("close() called", file=self.errors, flush=True)


def closing(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    n = int(environ.get("QUERY_STRING") or 3)
    return Closing(environ, n=n)


def exc_before_output(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain"), ("X-Gone", "1")])
    try:
        raise ValueError("app error")
    except ValueError:
        start_response("500 Internal Server Error", [("Content-Type", "text/plain")], sys.exc_info())
    return [b"handled error"]


def write_callable(environ, start_response):
    write = start_response("200 OK", [("Content-Type", "text/plain")])
    write(b"via write; ")
    return [b"then iterable"]


def auth_env(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [environ.get("HTTP_AUTHORIZATION", "none").encode()]


# ---- bad applications (not wrapped in the validator: they break the rules on purpose) ----

def raises(environ, start_response):
    raise ValueError("boom in application")


def raises_after_output(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return Closing(environ, n=5, fail_at=2)


def str_body(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return ["not bytes"]


def bad_status(environ, start_response):
    start_response("OK", [])
    return [b"x"]


def crlf_header(environ, start_response):
    start_response("200 OK", [("X-Evil", "a\r\nSet-Cookie: injected=1")])
    return [b"x"]


def unicode_header(environ, start_response):
    start_response("200 OK", [("X-Euro", "\u20ac")])
    return [b"x"]


def hop_header(environ, start_response):
    start_response("200 OK", [("Connection", "close")])
    return [b"x"]


def twice(environ, start_response):
    start_response("200 OK", [])
    start_response("201 Created", [])
    return [b"x"]


def short_cl(environ, start_response):
    start_response("200 OK", [("Content-Length", "100")])
    return [b"only ten b"]


def short_cl_gen(environ, start_response):
    start_response("200 OK", [("Content-Length", "100")])
    def gen():
        yield b"twelve bytes"
    return gen()


def long_body(environ, start_response):
    start_response("200 OK", [("Content-Length", "4")])
    return [b"four", b"and more"]


def no_start(environ, start_response):
    return [b"x"]


def returns_none(environ, start_response):
    start_response("200 OK", [])
    return None
