"""mod_python.cgihandler: runs a CGI-style Python script (print()ed headers and body) inside
Apache, as 3.5 did. Scripts run one at a time per process (they share os.environ and
sys.stdout), like 3.5's global lock."""
from __future__ import annotations

import io
import os
import runpy
import sys
import threading
from typing import Any

from . import apache

_lock = threading.Lock()


class _Out(io.TextIOBase):
    def __init__(self, req: Any) -> None:
        self.req, self.buf, self.headers_done = req, "", False

    def write(self, s: str) -> int:
        if self.headers_done:
            self.req.write(s.encode())
            return len(s)
        self.buf += s
        while not self.headers_done and "\n" in self.buf:
            line, self.buf = self.buf.split("\n", 1)
            line = line.rstrip("\r")
            if not line:
                self.headers_done = True
                if self.buf:
                    self.req.write(self.buf.encode())
                    self.buf = ""
                break
            name, _, value = line.partition(":")
            value = value.strip()
            if name.lower() == "content-type":
                self.req.content_type = value
            elif name.lower() == "status":
                self.req.status = int(value.split()[0])
            else:
                self.req.headers_out.add(name, value)
        return len(s)


class _In(io.RawIOBase):
    def __init__(self, req: Any) -> None:
        self.req = req

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        data = self.req.read(len(b))
        b[: len(data)] = data
        return len(data)


def handler(req: Any) -> int:
    if not req.filename or not os.path.isfile(req.filename):
        return apache.HTTP_NOT_FOUND
    env = apache.build_cgi_env(req)
    with _lock:
        saved = (dict(os.environ), sys.stdout, sys.stdin, sys.argv)
        out = _Out(req)
        try:
            os.environ.update(env)
            sys.stdout = out
            sys.stdin = io.TextIOWrapper(io.BufferedReader(_In(req)))
            sys.argv = [req.filename]
            runpy.run_path(req.filename, run_name="__main__")
        except SystemExit:
            pass
        finally:
            os.environ.clear()
            os.environ.update(saved[0])
            sys.stdout, sys.stdin, sys.argv = saved[1], saved[2], saved[3]
        if not out.headers_done and out.buf:
            req.write(out.buf.encode())
    return apache.OK
