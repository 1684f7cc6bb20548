"""What mod_python 3.5's own test suite relies on, each MPM, in mod_py's words: req.interpreter
and apache.interpreter (vhost, PythonInterpreter, per directory, per directive), req.hlist,
req.document_root() and a PythonTransHandler with no PythonHandler (declined to Apache),
server.get_options()/get_config(), PythonImport mod::function, '| .ext' handlers, a stalled
request body, mod_python's type names and apache.table, the missing-function error."""
from __future__ import annotations

import json
import shutil
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from harness import MPMS, Apache, wait_log

APPS = Path(__file__).parent / "mp_apps"

FILES = {
    "htdocs/perdir/top.txt": "top\n",
    "htdocs/perdir/sub/page.txt": "page\n",
    "htdocs/perdirective/sub/page.txt": "page\n",
    "htdocs/ext/page.py": "",
    "htdocs/ext/page.txt": "",
    "htdocs/types/file.txt": "types\n",
    "vhdocs/nodebug/page.txt": "page\n",
    "transdocs/file.txt": "served by Apache's default handler\n",
}


@pytest.fixture(scope="module", params=MPMS)
def server(request: pytest.FixtureRequest) -> Iterator[Apache]:
    a = Apache("""
PythonPath "sys.path + ['@ROOT@/mp_apps']"
PythonImport mp_compat::at_import
Timeout 2
<Location /c/info>
    SetHandler mod_python
    PythonHandler mp_compat::info
</Location>
<Location /c/named>
    SetHandler mod_python
    PythonHandler mp_compat::info
    PythonInterpreter myinterp
</Location>
<Location /c/addh>
    SetHandler mod_python
    PythonHandler mp_compat::add_first
</Location>
<Location /c/persist>
    SetHandler mod_python
    PythonHandler mp_compat::persist
</Location>
<Location /c/read>
    SetHandler mod_python
    PythonHandler mp_compat::read_body
    PythonDebug On
</Location>
<Location /c/nofn>
    SetHandler mod_python
    PythonHandler mp_compat::nosuchfn
</Location>
<Directory @ROOT@/htdocs/perdir>
    SetHandler mod_python
    PythonHandler mp_compat::info
    PythonInterpPerDirectory On
</Directory>
<Directory @ROOT@/htdocs/perdirective>
    SetHandler mod_python
    PythonHandler mp_compat::info
    PythonInterpPerDirective On
</Directory>
<Directory @ROOT@/htdocs/ext>
    SetHandler mod_python
    PythonHandler mp_compat::ext_py | .py
    PythonHandler mp_compat::ext_other
</Directory>
<Directory @ROOT@/htdocs/types>
    SetHandler mod_python
    PythonHandler mp_compat::types
    PythonOption opt_a 1
    PythonOption Opt_B 2
</Directory>
<Directory @ROOT@/vhdocs/nodebug>
    SetHandler mod_python
    PythonHandler mp_compat::info
    PythonDebug Off
</Directory>
# The first virtual host is the default one (requests with another Host).
<VirtualHost 127.0.0.1:*>
    ServerName default.test
    DocumentRoot @ROOT@/htdocs
</VirtualHost>
<VirtualHost 127.0.0.1:*>
    ServerName vhost.test
    DocumentRoot @ROOT@/vhdocs
    PythonDebug On
    PythonOption global 1
</VirtualHost>
<VirtualHost 127.0.0.1:*>
    ServerName trans.test
    DocumentRoot @ROOT@/transdocs
    SetHandler mod_python
    PythonTransHandler mp_compat::trans
</VirtualHost>
""", mpm=request.param)
    shutil.copytree(APPS, a.root / "mp_apps")
    for name, content in FILES.items():
        (a.root / name).parent.mkdir(parents=True, exist_ok=True)
        (a.root / name).write_text(content)
    a.start()
    yield a
    a.stop()
    assert "exit signal" not in a.log_text()
    a.remove()


def get_json(a: Apache, path: str, host: str | None = None) -> dict[str, Any]:
    status, _, body = a.get(path, headers={"Host": host} if host else None)
    assert status == 200, (path, body, a.log_text()[-2000:])
    return json.loads(body)


def test_interpreter_names(server: Apache) -> None:
    root = str(server.root)
    r = get_json(server, "/c/info")
    assert r["interpreter"] == r["apache_interpreter"] == "default.test"
    r = get_json(server, "/c/info", host="vhost.test")
    assert r["interpreter"] == r["apache_interpreter"] == "vhost.test"
    r = get_json(server, "/c/named")
    assert r["interpreter"] == r["apache_interpreter"] == "myinterp"
    # PythonInterpPerDirectory: the directory of req.filename
    assert get_json(server, "/perdir/top.txt")["interpreter"] == f"{root}/htdocs/perdir/"
    r = get_json(server, "/perdir/sub/page.txt")
    assert r["filename"] == f"{root}/htdocs/perdir/sub/page.txt"
    assert r["interpreter"] == r["apache_interpreter"] == f"{root}/htdocs/perdir/sub/"
    # PythonInterpPerDirective: the <Directory> of the directive, whatever the subdirectory
    r = get_json(server, "/perdirective/sub/page.txt")
    assert r["interpreter"] == r["apache_interpreter"] == f"{root}/htdocs/perdirective/"
    wait_log(server, "mod_py runs one interpreter per process")


def test_hlist(server: Apache) -> None:
    root = str(server.root)
    assert get_json(server, "/c/info")["hlist"] == ["mp_compat::info", "/c/info", True]
    r = get_json(server, "/perdirective/sub/page.txt")
    assert r["hlist"] == ["mp_compat::info", f"{root}/htdocs/perdirective/", False]
    status, _, body = server.get("/c/addh")
    assert status == 200, (body, server.log_text()[-2000:])
    assert body == f"first;added mp_compat::added {root}/mp_apps/".encode()


def test_document_root_and_trans_without_handler(server: Apache) -> None:
    assert get_json(server, "/c/info")["document_root"] == f"{server.root}/htdocs"
    assert get_json(server, "/c/info", host="vhost.test")["document_root"] == f"{server.root}/vhdocs"
    # trans.test: PythonTransHandler sets req.filename; SetHandler mod_python, no PythonHandler
    status, _, body = server.get("/anything", headers={"Host": "trans.test"})
    assert (status, body) == (200, b"served by Apache's default handler\n"), server.log_text()[-2000:]
    wait_log(server, "no PythonHandler is configured; declined")


def test_server_options_and_config(server: Apache) -> None:
    r = get_json(server, "/c/info", host="vhost.test")
    assert r["server_options"].get("global") == "1"
    assert "global" not in r["main_options"]
    assert (r["server_debug"], r["req_debug"]) == ("1", "1")
    r = get_json(server, "/nodebug/page.txt", host="vhost.test")
    assert (r["server_debug"], r["req_debug"]) == ("1", "0")
    assert "global" not in get_json(server, "/c/info")["server_options"]
    # main_server.get_options() is one dict per process: a value stored stays for later requests
    last: dict[int, str] = {}
    repeated = 0
    for i in range(20):
        r = get_json(server, f"/c/persist?v{i}")
        assert r["now"] == f"v{i}"
        if r["pid"] in last:
            assert r["prev"] == last[r["pid"]]
            repeated += 1
        last[r["pid"]] = f"v{i}"
    assert repeated > 0


def test_python_import_function(server: Apache) -> None:
    # PythonImport mp_compat::at_import ran in this very child, before its requests
    for _ in range(4):
        r = get_json(server, "/c/info")
        assert r["main_options"].get("imported_by") == str(r["pid"])


def test_ext_restricted_handler(server: Apache) -> None:
    assert server.get("/ext/page.py")[:3:2] == (200, b"ext_py;")
    assert server.get("/ext/page.txt")[:3:2] == (200, b"ext_other;")


def test_stalled_body_raises_oserror(server: Apache) -> None:
    # Content-Length 10, 9 bytes sent: after `Timeout 2` req.read() raises OSError
    with socket.create_connection(("127.0.0.1", server.port), timeout=15) as s:
        s.sendall(b"POST /c/read HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 10\r\n\r\n123456789")
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 500"), data[:2000]
    assert b"OSError" in body and b"read 123456789" not in body


def test_mod_python_types_and_table(server: Apache) -> None:
    r = get_json(server, "/types/file.txt")
    assert (r["conn_type"], r["server_type"]) == ("<class 'mp_conn'>", "<class 'mp_server'>")
    assert r["table"] == {
        "ci": ["text/plain", True], "copy_len": 2, "popped": ["X-A", "1"], "default": ["2", "2"],
        "eq_dict": True, "cleared": 0, "copy_kept": "1",
    }
    assert (r["options_eq"], r["options_ne"]) == (True, False)
    assert r["mmn_is_int"] and r["mmn"] > 20111130
    assert r["fname"] == r["canonical"] == f"{server.root}/htdocs/types/file.txt"
    assert r["uri_path"] == "/types/file.txt"
    assert (r["xmethods"], r["languages"]) == ("()", "()")
    assert r["client_ip"] == "127.0.0.1" and r["argv"] == ["mod_python"]


def test_missing_function_error(server: Apache) -> None:
    status, _, _ = server.get("/c/nofn")
    assert status == 500
    # as mod_python 3.5 words it: the module's file, then the missing name
    wait_log(server, f"module '{server.root}/mp_apps/mp_compat.py' contains no 'nosuchfn'")
