"""mod_python.util (FieldStorage, parse_qs, redirect, apply_fs_data) as 3.5 code uses it, under
each MPM: handlers that import only mod_python, a real Apache, real multipart bodies."""
from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Iterable, Iterator

import pytest

from harness import MPMS, Apache

APPS = Path(__file__).parent / "mp_apps"


@pytest.fixture(scope="module", params=MPMS)
def server(request: pytest.FixtureRequest) -> Iterator[Apache]:
    a = Apache("""
PythonPath "sys.path + ['@ROOT@/mp_apps']"
LimitRequestBody 0
<Location /u>
    SetHandler mod_python
</Location>
""" + "".join(f"<Location /u/{n}>\n    PythonHandler mp_util::{n}\n</Location>\n"
              for n in ("form", "qs", "go", "apply")), mpm=request.param)
    shutil.copytree(APPS, a.root / "mp_apps")
    a.start()
    yield a
    a.stop()
    log = a.log_text()
    assert "Segmentation fault" not in log and "exit signal" not in log, log[-3000:]
    a.remove()


def multipart(parts: list[tuple[str, str | None, bytes]], boundary: str = "XyZzy-bound") -> tuple[bytes, dict[str, str]]:
    out = b""
    for name, filename, data in parts:
        disp = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
        out += f"--{boundary}\r\nContent-Disposition: {disp}\r\n".encode()
        if filename:
            out += b"Content-Type: application/octet-stream\r\n"
        out += b"\r\n" + data + b"\r\n"
    out += f"--{boundary}--\r\n".encode()
    return out, {"Content-Type": f"multipart/form-data; boundary={boundary}"}


def post(a: Apache, path: str, body: bytes | Iterable[bytes], headers: dict[str, str]) -> dict:
    status, _, out = a.request("POST", path, body=body, headers=headers, timeout=120)
    assert status == 200, (status, out[:500], a.log_text()[-2000:])
    return json.loads(out)


def test_query_and_urlencoded(server: Apache) -> None:
    status, _, body = server.get("/u/form?a=1&a=2&b=&c=%C3%A9")
    r = json.loads(body)
    assert r["first_a"] == "1" and r["list_a"] == ["1", "2"] and r["has_b"] is True
    assert ["c", {"value": "é", "type": "text/plain"}] in r["items"]
    r = post(server, "/u/form", b"a=x&b=y+z", {"Content-Type": "application/x-www-form-urlencoded"})
    assert r["keys"] == ["a", "b"] and ["b", {"value": "y z", "type": "text/plain"}] in r["items"]
    r = json.loads(server.get("/u/qs?x=1&x=2&y=")[2])
    assert r["qs"] == {"x": ["1", "2"], "y": [""]} and r["qsl"] == [["x", "1"], ["x", "2"]]


def test_multipart_fields_and_files(server: Apache) -> None:
    # Binary data with CR/LF runs and a fake boundary line inside must come back byte for byte.
    tricky = b"\r\n--XyZzy-boun\r\n\r" + os.urandom(300_000) + b"\r\n\r\n--XyZzy-bound-not\r"
    body, headers = multipart([("a", None, b"first"), ("a", None, b"second"),
                               ("up", "data.bin", tricky), ("empty", "none.txt", b"")])
    r = post(server, "/u/form", body, headers)
    items = dict((n, d) for n, d in r["items"] if n != "a")
    assert r["list_a"] == ["first", "second"]
    assert items["up"]["size"] == len(tricky) and items["up"]["sha256"] == hashlib.sha256(tricky).hexdigest()
    assert items["up"]["filename"] == "data.bin" and items["up"]["on_disk"] is True
    assert items["empty"]["size"] == 0


def test_multipart_folded_headers_and_split_crlf(server: Apache) -> None:
    # FieldStorage reads 65368-byte blocks: a last line of 65367 bytes puts the CRLF before the
    # boundary across two blocks, and a CR at the block's end inside a line must stay data.
    block = 65368
    for data in (b"a" * 100 + b"\r\n" + b"b" * (block - 1),
                 b"a" * 100 + b"\r\n" + b"b" * (block - 1) + b"\r",
                 b"b" * (block - 1) + b"\rccc\r\n"):
        body = (b'--B\r\nContent-Type: text/plain\r\nContent-Disposition: form-data;\r\n name="a"\r\n\r\nx\r\n'
                b'--B\r\nContent-Disposition: form-data; name="up"; filename="f"\r\n\r\n' + data + b"\r\n--B--\r\n")
        r = post(server, "/u/form", body, {"Content-Type": 'multipart/form-data; boundary="B"'})
        items = dict(r["items"])
        assert r["list_a"] == ["x"]  # the folded Content-Disposition still names the field
        assert items["up"]["size"] == len(data) and items["up"]["sha256"] == hashlib.sha256(data).hexdigest()


def test_bad_form_bodies(server: Apache) -> None:
    assert server.request("POST", "/u/form", body=b"x", headers={"Content-Type": "text/weird"})[0] == 501
    status = server.request("POST", "/u/form", body=b"--x\r\n", headers={"Content-Type": "multipart/form-data"})[0]
    assert status == 400  # no boundary


def test_redirect_and_apply_fs_data(server: Apache) -> None:
    status, headers, _ = server.get("/u/go")
    assert status == 302 and headers["Location"] == "/elsewhere"
    assert server.get("/u/go?p")[0] == 301
    assert server.get("/u/apply?a=1&zzz=ignored")[2] == b"a=1 b=default"
    assert server.get("/u/apply?a=1&b=2")[2] == b"a=1 b=2"


def test_1gib_upload_streams_to_disk(server: Apache) -> None:
    boundary = "BIGbound"
    head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"big\"; filename=\"big.bin\"\r\n"
            "Content-Type: application/octet-stream\r\n\r\n").encode()
    tail = f"\r\n--{boundary}--\r\n".encode()
    block = bytes(range(256)) * 4096  # 1 MiB
    size = 1 << 30
    h = hashlib.sha256()
    for _ in range(1024):
        h.update(block)

    def gen() -> Iterator[bytes]:
        yield head
        for _ in range(1024):
            yield block
        yield tail

    r = post(server, "/u/form", gen(), {"Content-Type": f"multipart/form-data; boundary={boundary}",
                                         "Content-Length": str(len(head) + size + len(tail))})
    big = r["items"][0][1]
    assert big["size"] == size and big["sha256"] == h.hexdigest() and big["on_disk"] is True
    assert r["peak_growth_kib"] < 32 * 1024, r["peak_growth_kib"]  # streamed: memory stays flat
