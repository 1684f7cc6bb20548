"""Handlers for test_stress.py."""
import json
import os
import sys

from modpy import apache


def _rss_kib():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def hello(req):
    req.content_type = "text/plain"
    req.set_content_length(14)
    req.write(b"Hello, World!\n")
    return apache.OK


def echo(req):
    body = req.read()
    req.set_content_length(len(body))
    req.write(body)
    return apache.OK


def count(req):
    """Reads the body in 1 MiB chunks; reports bytes read and RSS before/peak/after."""
    start = peak = _rss_kib()
    total = 0
    while True:
        b = req.read(1 << 20)
        if not b:
            break
        total += len(b)
        if (total >> 20) % 32 == 0:
            peak = max(peak, _rss_kib())
    out = json.dumps({"total": total, "start": start, "peak": max(peak, _rss_kib())}).encode()
    req.content_type = "application/json"
    req.write(out)
    return apache.OK


def env(req):
    out = json.dumps({"prefix": sys.prefix, "base_prefix": sys.base_prefix, "executable": sys.executable,
                      "path": sys.path, "version": sys.version, "uid": os.getuid(),
                      "env_path": os.environ.get("PATH")}).encode()
    req.content_type = "application/json"
    req.write(out)
    return apache.OK
