"""Unit tests of modpy.daemon's pure-Python parts, over real sockets (socketpair), no Apache:
frames, wsgi.input pulling the body chunk by chunk, the status/header checks, and the
GIL-keeping libc calls (_NoWait, Timer). The e2e tests run the same code in worker processes
behind a real Apache; here each piece is driven on its own, including its failure paths.
"""
from __future__ import annotations

import os
import re
import select
import socket
import struct
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "pylib"))

from modpy import daemon  # noqa: E402
from modpy.daemon import (  # noqa: E402
    BODY, BODY_ERROR, DATA, END, MAX_FRAME, READ, START, Connection, Input, ProtocolError, WSGIError,
)


def frame(kind: int, payload: bytes = b"") -> bytes:
    return struct.pack(">BBHI", kind, 0, 0, len(payload)) + payload


CONNS = ["python"] + (["native"] if daemon._native is not None else [])


@pytest.fixture(params=CONNS)
def pair(request: pytest.FixtureRequest) -> Iterator[tuple[Connection, socket.socket]]:
    """A worker-side connection and the raw socket of the 'Apache child' end: daemon.py's
    Connection, and modpy._native's Conn (what the worker uses where it loads)."""
    a, b = socket.socketpair()
    conn: Any = Connection(a) if request.param == "python" else daemon._native.Conn(a.detach())
    yield conn, b
    conn.close()
    b.close()


def read_frames(sock: socket.socket, n: int) -> list[tuple[int, bytes]]:
    """The next n frames the worker sent (what the Apache child would read)."""
    buf = b""
    out: list[tuple[int, bytes]] = []
    while len(out) < n:
        while len(buf) >= 8:
            kind, _, _, length = struct.unpack(">BBHI", buf[:8])
            if len(buf) < 8 + length:
                break
            out.append((kind, buf[8:8 + length]))
            buf = buf[8 + length:]
        if len(out) < n:
            chunk = sock.recv(1 << 20)
            assert chunk, "the worker closed the connection"
            buf += chunk
    return out


# ---- frames ----

def test_small_frames_go_out_in_one_write_at_flush(pair: tuple[Connection, socket.socket]) -> None:
    conn, apache = pair
    conn.queue(START, b"200 OK")
    conn.queue(DATA, b"hello")
    conn.queue(END)
    with pytest.raises(BlockingIOError):  # nothing is sent before flush()
        apache.recv(4096, socket.MSG_DONTWAIT)
    conn.flush()
    time.sleep(0.05)
    data = apache.recv(4096, socket.MSG_DONTWAIT)
    assert data == frame(START, b"200 OK") + frame(DATA, b"hello") + frame(END)


def test_large_payload_is_sent_whole(pair: tuple[Connection, socket.socket]) -> None:
    conn, apache = pair
    payload = os.urandom(700_000)  # over the queue's copy limit and the socket buffer
    got: list[list[tuple[int, bytes]]] = []
    reader = threading.Thread(target=lambda: got.append(read_frames(apache, 2)))
    reader.start()
    conn.queue(START, b"200 OK")
    conn.queue(DATA, payload)
    conn.flush()
    reader.join(10)
    assert got == [[(START, b"200 OK"), (DATA, payload)]]


@pytest.mark.parametrize("size", [0, 5, 4090, 5000, 20_000, 65528, 65536, 65537, 300_000, MAX_FRAME])
def test_frames_arriving_in_pieces_are_read_whole(pair: tuple[Connection, socket.socket], size: int) -> None:
    conn, apache = pair
    payload = os.urandom(size)
    wire = frame(BODY, payload) + frame(END)

    def drip() -> None:  # odd-sized pieces, with pauses, cutting headers and payloads
        for i in range(0, len(wire), 70_001):
            apache.sendall(wire[i:i + 3])
            time.sleep(0.002)
            apache.sendall(wire[i + 3:i + 70_001])

    t = threading.Thread(target=drip)
    t.start()
    assert conn.read_frame() == (BODY, payload)
    assert conn.read_frame() == (END, b"")
    t.join()


@pytest.mark.parametrize("wire,message", [
    (b"\xff\0\0\0\0\0\0\0", "bad frame header"),
    (struct.pack(">BBHI", DATA, 1, 0, 0), "bad frame header"),  # flags set
    (struct.pack(">BBHI", DATA, 0, 7, 0), "bad frame header"),
    (struct.pack(">BBHI", DATA, 0, 0, MAX_FRAME + 1), "over the limit"),
])
def test_malformed_frames_are_protocol_errors(pair: tuple[Connection, socket.socket], wire: bytes, message: str) -> None:
    conn, apache = pair
    apache.sendall(wire)
    with pytest.raises(ProtocolError, match=message):
        conn.read_frame()


@pytest.mark.parametrize("wire", [b"", b"\x15\0\0", frame(DATA, b"abcdef")[:10], frame(DATA, bytes(200_000))[:100_000]])
def test_end_of_file_inside_a_frame(pair: tuple[Connection, socket.socket], wire: bytes) -> None:
    conn, apache = pair
    apache.sendall(wire)
    apache.shutdown(socket.SHUT_WR)
    with pytest.raises(EOFError):
        conn.read_frame()


# ---- wsgi.input ----

def serve_body(apache: socket.socket, pieces: list[bytes], error: bytes | None = None) -> threading.Thread:
    """The Apache child's side of a body: each READ gets the next piece (at most what was
    asked for, the rest kept for the next READ), then an empty BODY (end) or BODY_ERROR."""
    def run() -> None:
        queue = [p for p in pieces if p]
        while True:
            try:
                [(kind, payload)] = read_frames(apache, 1)
            except (AssertionError, OSError):
                return
            assert kind == READ
            want = struct.unpack(">I", payload)[0]
            if queue:
                piece = queue.pop(0)
                if len(piece) > want:
                    queue.insert(0, piece[want:])
                    piece = piece[:want]
                apache.sendall(frame(BODY, piece))
            elif error is not None:
                apache.sendall(frame(BODY_ERROR, error))
            else:
                apache.sendall(frame(BODY))
    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t


BODY_TEXT = b"first line\nsecond\n\nno newline at the end"


@pytest.mark.parametrize("pieces", [[BODY_TEXT], [BODY_TEXT[:3], BODY_TEXT[3:15], BODY_TEXT[15:]],
                                    [bytes([c]) for c in BODY_TEXT]])
def test_input_read_readline_readlines_iteration(pair: tuple[Connection, socket.socket], pieces: list[bytes]) -> None:
    conn, apache = pair
    serve_body(apache, pieces)
    inp = Input(conn)
    assert inp.read(0) == b""
    assert inp.readline(5) == b"first"
    assert inp.readline() == b" line\n"
    assert inp.readlines(1) == [b"second\n"]  # hint reached after one line
    assert list(inp) == [b"\n", b"no newline at the end"]
    assert inp.read() == b"" and inp.readline() == b"" and inp.read(10) == b""


def test_input_read_sizes(pair: tuple[Connection, socket.socket]) -> None:
    conn, apache = pair
    body = os.urandom(600_000)
    serve_body(apache, [body[:100], body[100:]])
    inp = Input(conn)
    assert inp.read(50) == body[:50]
    assert inp.read(300_000) == body[50:300_050]  # over MAX_CHUNK: several READs
    assert inp.read(None) == body[300_050:]
    assert inp.read(-1) == b""


def test_input_body_error_is_an_oserror_with_apaches_words(pair: tuple[Connection, socket.socket]) -> None:
    conn, apache = pair
    serve_body(apache, [b"partial"], error=b"the client closed the connection before sending the whole body")
    inp = Input(conn)
    assert inp.read(7) == b"partial"
    with pytest.raises(OSError, match="client closed the connection"):
        inp.read()
    assert inp.read() == b""  # after the error: end of input, no more READ frames


def test_input_drain_reads_what_the_app_left(pair: tuple[Connection, socket.socket]) -> None:
    conn, apache = pair
    serve_body(apache, [b"x" * 1000, b"y" * 1000])
    inp = Input(conn)
    assert inp.read(10) == b"x" * 10
    inp.drain()
    assert inp.eof and inp.read() == b""


def test_input_other_frame_than_body_is_a_protocol_error(pair: tuple[Connection, socket.socket]) -> None:
    conn, apache = pair
    apache.sendall(frame(DATA, b"?"))
    with pytest.raises(ProtocolError, match="expected BODY"):
        Input(conn).read(1)


# ---- status and headers (the same rules and words as src/wsgi/response.rs) ----

@pytest.mark.parametrize("status,code", [("200 OK", 200), ("404 Not Found", 404), ("599 x", 599), ("201", 201),
                                         ("200 caf\xe9", 200)])
def test_valid_statuses(status: str, code: int) -> None:
    assert daemon.check_status(status) == code
    assert daemon.check_status(status) == code  # the cached path


@pytest.mark.parametrize("status,message", [
    ("OK", "does not start with a three-digit code"),
    ("20 OK", "does not start with a three-digit code"),
    ("099 Low", "code below 100"),
    ("200OK", "must be followed by a space"),
    ("200 OK\r\nX-Injected: 1", "contains the character"),
    ("200 \u20ac", "contains the character"),
])
def test_invalid_statuses(status: str, message: str) -> None:
    with pytest.raises(WSGIError, match=message):
        daemon.check_status(status)


@pytest.mark.parametrize("name,value,message", [
    ("X Bad", "v", "not a valid HTTP token"),
    ("", "v", "not a valid HTTP token"),
    ("Connection", "close", "hop-by-hop"),
    ("transfer-encoding", "chunked", "hop-by-hop"),
    ("X-Split", "a\r\nSet-Cookie: evil=1", "CR, LF or NUL"),
    ("X-Nul", "a\0b", "CR, LF or NUL"),
    ("X-Euro", "\u20ac", "not latin-1"),
])
def test_invalid_headers(name: str, value: str, message: str) -> None:
    with pytest.raises(WSGIError, match=message):
        daemon.check_header(name, value)


def test_valid_headers() -> None:
    for name, value in (("Content-Type", "text/plain"), ("X-Latin1", "caf\xe9"), ("Set-Cookie", "a=1; Path=/")):
        daemon.check_header(name, value)
        daemon.check_header(name, value)  # the cached path


# ---- libc calls that keep the GIL ----

needs_nowait = pytest.mark.skipif(daemon._nowait is None, reason="CPython on Linux only (ctypes)")


@needs_nowait
def test_nowait_recv_and_send() -> None:
    nw = daemon._nowait
    assert nw is not None
    a, b = socket.socketpair()
    try:
        assert nw.try_recv(a.fileno(), 100) is None  # nothing there: would block
        assert nw.try_send(b.fileno(), b"ping") == 4
        assert nw.try_recv(a.fileno(), 100) == b"ping"
        b.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        sent = 0
        while (n := nw.try_send(b.fileno(), b"z" * 65536)) > 0:
            sent += n
        assert sent > 0 and n == 0  # a full buffer: 0, not an exception
        b.close()
        while nw.try_recv(a.fileno(), 65536):
            pass
        assert nw.try_recv(a.fileno(), 100) == b""  # end of file
        with pytest.raises(OSError):
            nw.try_send(a.fileno(), b"x")  # the peer is gone: EPIPE, no SIGPIPE
    finally:
        a.close()
        b.close()


@needs_nowait
def test_nowait_rearm_is_epoll_modify() -> None:
    nw = daemon._nowait
    assert nw is not None
    a, b = socket.socketpair()
    ep = select.epoll()
    try:
        ep.register(a.fileno(), select.EPOLLIN | select.EPOLLONESHOT)
        b.sendall(b"1")
        assert [fd for fd, _ in ep.poll(1)] == [a.fileno()]
        assert ep.poll(0.05) == []  # one-shot: disarmed after firing
        nw.rearm(ep.fileno(), a.fileno(), select.EPOLLIN | select.EPOLLONESHOT)
        assert [fd for fd, _ in ep.poll(1)] == [a.fileno()]  # the same fd comes back
        with pytest.raises(OSError):
            nw.rearm(ep.fileno(), 10_000, select.EPOLLIN)  # not registered: an error, raised
    finally:
        ep.close()
        a.close()
        b.close()


@needs_nowait
def test_timer_fires_once_at_its_deadline_and_resetting_it_clears_a_fired_one() -> None:
    nw = daemon._nowait
    assert nw is not None
    timer = nw.timer()
    ep = select.epoll()
    try:
        ep.register(timer.fd, select.EPOLLIN)
        assert ep.poll(0.05) == []  # not set yet
        assert timer.consume() is False and timer.deadline is None
        start = time.monotonic()
        timer.set_at(start + 0.02)
        assert timer.deadline == start + 0.02
        assert ep.poll(1) != []
        assert time.monotonic() - start >= 0.019  # not before its deadline
        assert timer.consume() is True and timer.deadline is None
        assert ep.poll(0.05) == []  # one-shot
        assert timer.consume() is False
        # Fired, then set again before anyone read it: the expiry is gone (what tells a
        # standby thread that woke late that the leader's request has ended since).
        timer.set_at(time.monotonic() + 0.001)
        time.sleep(0.01)
        timer.set_at(time.monotonic() + 10)
        assert timer.consume() is False
        assert ep.poll(0.05) == []
        timer.set_at(time.monotonic() - 1)  # in the past: fires at once
        assert ep.poll(1) != [] and timer.consume() is True
    finally:
        ep.close()
        os.close(timer.fd)



# ---- the response: start_response, write(), finish() (daemon.Response and modpy._native's) ----

def response_for(conn: Any) -> Any:
    """The Response class the worker pairs with this kind of connection."""
    return daemon.Response(conn) if isinstance(conn, Connection) else daemon._native.Response(conn)


def test_response_list_body_goes_out_as_frames(pair: tuple[Connection, socket.socket]) -> None:
    conn, apache = pair
    resp = response_for(conn)
    write = resp.start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "5")])
    assert callable(write) and resp.status == "200 OK" and resp.length == 5 and not resp.sent
    resp.finish([b"he", b"", b"llo"], False)
    conn.send(END)
    assert resp.sent
    assert read_frames(apache, 4) == [
        (START, b"200 OK\0Content-Type\0text/plain\0Content-Length\x005\0"),
        (DATA, b"he"), (DATA, b"llo"), (END, b""),
    ]


def test_response_generator_and_write_stream(pair: tuple[Connection, socket.socket]) -> None:
    conn, apache = pair
    resp = response_for(conn)
    write = resp.start_response("201 Created", [("X-Latin", "caf\xe9")])
    write(b"first")
    # Streamed: the client has START and the first piece before the app returns.
    assert read_frames(apache, 2) == [(START, b"201 Created\0X-Latin\0caf\xe9\0"), (DATA, b"first")]
    resp.finish((piece for piece in [b"a", b"b"]), False)
    assert read_frames(apache, 2) == [(DATA, b"a"), (DATA, b"b")]


@pytest.mark.parametrize("status,headers,message", [
    (b"200 OK", [], "status must be str, not bytes"),
    ("20 OK", [], "does not start with a three-digit code"),
    ("200 OK", ("X", "y"), "must be a list of"),
    ("200 OK", [("X", "y", "z")], "is not a (name, value) tuple"),
    ("200 OK", [("X", b"y")], "must be a pair of str"),
    ("200 OK", [("X-Split", "a\r\nSet-Cookie: evil=1")], "CR, LF or NUL"),
    ("200 OK", [("Connection", "close")], "hop-by-hop"),
    ("200 OK", [("Content-Length", "ten")], 'Content-Length "ten" is not a number'),
    ("200 \udcff", [], "contains the character"),  # a lone surrogate (surrogateescape)
    ("200 OK", [("X-Name", "a\udcffb")], "not latin-1"),
])
def test_response_refuses_bad_start_response(pair: tuple[Connection, socket.socket], status: Any,
                                             headers: Any, message: str) -> None:
    resp = response_for(pair[0])
    with pytest.raises(WSGIError, match=re.escape(message)):
        resp.start_response(status, headers)
    assert not resp.sent


def test_response_start_response_twice_and_exc_info(pair: tuple[Connection, socket.socket]) -> None:
    resp = response_for(pair[0])
    resp.start_response("200 OK", [])
    with pytest.raises(WSGIError, match="called a second time without exc_info"):
        resp.start_response("200 OK", [])
    try:
        raise KeyError("app failed")
    except KeyError:
        exc_info = sys.exc_info()
    resp.start_response("500 Oops", [], exc_info)  # not sent yet: replaces the status
    assert resp.status == "500 Oops"
    resp.send_start()
    with pytest.raises(KeyError, match="app failed"):  # sent: re-raises the app's error
        resp.start_response("500 Oops", [], exc_info)


@pytest.mark.parametrize("result,head,message", [
    (lambda: [b"abc", "def"], False, "response item 1 is str, not bytes"),
    (lambda: iter([b"x", 7]), False, "response item 1 is int, not bytes"),
    (lambda: 42, False, "the application returned int , which is not an iterable of bytes"),
    (lambda: [b"abc"], False, "the application sent 3 bytes, less than its Content-Length of 10"),
])
def test_response_refuses_bad_bodies(pair: tuple[Connection, socket.socket], result: Callable[[], Any],
                                     head: bool, message: str) -> None:
    resp = response_for(pair[0])
    resp.start_response("200 OK", [("Content-Length", "10")])
    with pytest.raises(WSGIError, match=re.escape(message)):
        resp.finish(result(), head)


def test_response_short_body_is_fine_for_head_and_write_wants_bytes(pair: tuple[Connection, socket.socket]) -> None:
    resp = response_for(pair[0])
    write = resp.start_response("200 OK", [("Content-Length", "10")])
    resp.finish([b"abc"], True)
    with pytest.raises(WSGIError, match="write\\(\\) takes bytes, not str"):
        write("text")


def test_response_body_without_start_response(pair: tuple[Connection, socket.socket]) -> None:
    resp = response_for(pair[0])
    with pytest.raises(WSGIError, match="without calling start_response"):
        resp.finish([b"x"], False)
