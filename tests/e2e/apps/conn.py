"""PythonConnectionHandler protocols and connection-level filters for test_connection.py."""
import json

from modpy import apache


def echo(conn):
    """A line protocol: every line comes back as b"echo: " + line; "quit" ends it."""
    while True:
        line = conn.readline()
        if not line:
            break
        if line.strip() == b"QUIT" or line.strip() == b"quit":
            conn.write(b"bye\n")
            break
        conn.write(b"echo: " + line)
    return apache.OK


def boom(conn):
    conn.readline()
    raise RuntimeError("connection handler exploded")


def bad_return(conn):
    conn.readline()
    return "not a status"


def reads(conn):
    """read(n) returns what has arrived, at most n; read(-1) reads to the end."""
    first = conn.readline()
    some = conn.read(3)
    rest = conn.read(-1)
    conn.write(json.dumps([first.decode(), some.decode(), rest.decode()]).encode() + b"\n")
    return apache.OK


def declines(conn):
    """Declines: Apache's HTTP processing serves the connection."""
    return apache.DECLINED


# ---- connection-level filters ----

def upper_in(f):
    s = f.read()
    while s:
        f.write(s.upper())
        s = f.read()
    if s is None:
        f.close()


def bracket_out(f):
    s = f.read()
    while s:
        f.write(b"[" + s + b"]")
        s = f.read()
    if s is None:
        f.close()


def _count(f, key, s):
    notes = f.connection.notes
    notes[key] = str(int(notes[key] if key in notes else 0) + len(s))


def count_in(f):
    """Counts the raw bytes of the connection (HTTP requests), passing them unchanged."""
    assert f.req is None
    s = f.read()
    while s:
        _count(f, "in_bytes", s)
        f.write(s)
        s = f.read()
    if s is None:
        f.close()


def count_out(f):
    s = f.read()
    while s:
        _count(f, "out_bytes", s)
        f.write(s)
        s = f.read()
    if s is None:
        f.close()


def notes(req):
    n = req.connection.notes
    body = json.dumps({k: n[k] for k in ("in_bytes", "out_bytes") if k in n}).encode()
    req.content_type = "application/json"
    req.write(body)
    return apache.OK


def echo_body(req):
    req.content_type = "application/octet-stream"
    req.write(req.read())
    return apache.OK
