"""PythonConnectionHandler (Python owns the connection: Connection.read/readline/write) and
connection-level filters (PythonInputFilter/PythonOutputFilter ... CONNECTION), on a real
Apache per MPM, spoken to with raw sockets."""
from __future__ import annotations

import http.client
import json
import shutil
import socket
import time
from pathlib import Path
from typing import Iterator

import pytest

from harness import Apache, MPMS, free_port, wait_log

APPS = Path(__file__).parent / "apps"

PORTS = ("echo", "boom", "badret", "filtered", "http", "reads", "declines")


def conf(ports: dict[str, int]) -> str:
    p = ports
    return f"""
PythonPath "sys.path + ['@ROOT@/apps']"
{''.join(f'Listen 127.0.0.1:{port}' + chr(10) for port in p.values())}
<VirtualHost 127.0.0.1:{p['echo']}>
    PythonConnectionHandler conn::echo
</VirtualHost>
<VirtualHost 127.0.0.1:{p['boom']}>
    PythonConnectionHandler conn::boom
</VirtualHost>
<VirtualHost 127.0.0.1:{p['badret']}>
    PythonConnectionHandler conn::bad_return
</VirtualHost>
<VirtualHost 127.0.0.1:{p['reads']}>
    PythonConnectionHandler conn::reads
</VirtualHost>
<VirtualHost 127.0.0.1:{p['declines']}>
    PythonConnectionHandler conn::declines
    <Location /notes>
        SetHandler modpy
        PythonHandler conn::notes
    </Location>
</VirtualHost>
<VirtualHost 127.0.0.1:{p['filtered']}>
    PythonConnectionHandler conn::echo
    PythonInputFilter conn::upper_in CONNUPPER CONNECTION
    PythonOutputFilter conn::bracket_out CONNBRACKET CONNECTION
</VirtualHost>
<VirtualHost 127.0.0.1:{p['http']}>
    PythonInputFilter conn::count_in CONNCOUNTIN CONNECTION
    PythonOutputFilter conn::count_out CONNCOUNTOUT CONNECTION
    <Location /notes>
        SetHandler modpy
        PythonHandler conn::notes
    </Location>
    <Location /echo>
        SetHandler modpy
        PythonHandler conn::echo_body
    </Location>
</VirtualHost>
<Location /plain>
    SetHandler modpy
    PythonHandler conn::notes
</Location>
"""


@pytest.fixture(scope="module", params=MPMS)
def server(request: pytest.FixtureRequest) -> Iterator[Apache]:
    ports = {name: free_port() for name in PORTS}
    a = Apache(conf(ports), mpm=request.param, loglevel="info")
    a.ports = ports  # type: ignore[attr-defined]
    shutil.copytree(APPS, a.root / "apps")
    a.start()
    for port in ports.values():  # every listener is up
        deadline = time.time() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.time() > deadline:
                    raise
                time.sleep(0.05)
    yield a
    a.stop()
    log = a.log_text()
    assert "Segmentation fault" not in log and "exit signal" not in log, log[-3000:]
    assert "panic" not in log, log[-3000:]
    a.remove()


def connect(a: Apache, name: str) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", a.ports[name]), timeout=10)  # type: ignore[attr-defined]
    return s


def recv_until(s: socket.socket, end: bytes, limit: int = 1 << 20) -> bytes:
    buf = b""
    while not buf.endswith(end):
        b = s.recv(65536)
        if not b:
            break
        buf += b
        assert len(buf) < limit
    return buf


def recv_all(s: socket.socket) -> bytes:
    buf = b""
    while True:
        b = s.recv(65536)
        if not b:
            return buf
        buf += b




def test_echo_line_protocol(server: Apache) -> None:
    s = connect(server, "echo")
    try:
        s.sendall(b"hello\n")
        assert recv_until(s, b"\n") == b"echo: hello\n"
        # two lines in one packet, answered in order
        s.sendall(b"one\ntwo\n")
        assert recv_until(s, b"two\n") == b"echo: one\necho: two\n"
        # a line in pieces
        s.sendall(b"par")
        time.sleep(0.2)
        s.sendall(b"tial\n")
        assert recv_until(s, b"\n") == b"echo: partial\n"
        # a long line
        long = b"x" * 100_000 + b"\n"
        s.sendall(long)
        assert recv_until(s, b"\n") == b"echo: " + long
        s.sendall(b"quit\n")
        assert recv_all(s) == b"bye\n"
    finally:
        s.close()


def test_many_clients_at_once(server: Apache) -> None:
    socks = [connect(server, "echo") for _ in range(6)]
    try:
        for i, s in enumerate(socks):
            s.sendall(b"client %d\n" % i)
        for i, s in enumerate(socks):
            assert recv_until(s, b"\n") == b"echo: client %d\n" % i
    finally:
        for s in socks:
            s.close()


def test_client_closing_ends_the_handler(server: Apache) -> None:
    s = connect(server, "echo")
    s.sendall(b"last words\n")
    assert recv_until(s, b"\n") == b"echo: last words\n"
    s.close()
    # the handler saw EOF (readline() == b"") and returned; the server goes on
    s = connect(server, "echo")
    try:
        s.sendall(b"again\n")
        assert recv_until(s, b"\n") == b"echo: again\n"
    finally:
        s.close()


def test_read_semantics(server: Apache) -> None:
    s = connect(server, "reads")
    try:
        s.sendall(b"first line\nab")
        time.sleep(0.3)
        s.sendall(b"cdef")
        s.shutdown(socket.SHUT_WR)
        got = json.loads(recv_all(s))
    finally:
        s.close()
    assert got[0] == "first line\n"
    assert got[1] == "ab" or got[1] == "abc"  # what had arrived, at most 3 bytes
    assert got[1] + got[2] == "abcdef"


def test_connection_handler_exception_closes_and_logs(server: Apache) -> None:
    s = connect(server, "boom")
    try:
        s.sendall(b"hi\n")
        assert recv_all(s) == b""
    finally:
        s.close()
    log = wait_log(server, "RuntimeError: connection handler exploded")
    assert "mod_py: PythonConnectionHandler 'conn::boom' failed:" in log


def test_connection_handler_bad_return(server: Apache) -> None:
    s = connect(server, "badret")
    try:
        s.sendall(b"hi\n")
        assert recv_all(s) == b""
    finally:
        s.close()
    wait_log(server, "connection handler returned 'not a status' (str)")


def test_declined_leaves_the_connection_to_http(server: Apache) -> None:
    c = http.client.HTTPConnection("127.0.0.1", server.ports["declines"], timeout=10)  # type: ignore[attr-defined]
    try:
        c.request("GET", "/notes")
        r = c.getresponse()
        assert (r.status, r.read()) == (200, b"{}")
    finally:
        c.close()
    # and the main server is plain HTTP
    assert server.get("/plain")[0] == 200


def test_connection_filters_around_a_connection_handler(server: Apache) -> None:
    s = connect(server, "filtered")
    try:
        s.sendall(b"abc\n")
        # the input filter upper-cases what the handler reads; the output filter brackets
        # what it writes
        assert recv_until(s, b"]") == b"[echo: ABC\n]"
        s.sendall(b"quit\n")
        assert recv_all(s) == b"[bye\n]"
    finally:
        s.close()


def test_connection_filters_on_http_keepalive(server: Apache) -> None:
    port = server.ports["http"]  # type: ignore[attr-defined]
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        c.request("GET", "/notes")
        r = c.getresponse()
        first = json.loads(r.read())
        c.request("POST", "/echo", body=b"z" * 200_000)
        r = c.getresponse()
        assert (r.status, r.read()) == (200, b"z" * 200_000)
        c.request("GET", "/notes")
        r = c.getresponse()
        second = json.loads(r.read())
    finally:
        c.close()
    # the input filter saw every raw byte of the requests (request lines, headers, body)
    assert int(first["in_bytes"]) > 30
    assert int(second["in_bytes"]) > int(first["in_bytes"]) + 200_000
    # the output filter saw the responses before this one
    assert int(second["out_bytes"]) > 200_000
    # pipelined requests, read through the filter
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    try:
        s.sendall(b"GET /notes HTTP/1.1\r\nHost: x\r\n\r\nGET /notes HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        data = recv_all(s)
    finally:
        s.close()
    assert data.count(b"HTTP/1.1 200 OK") == 2
