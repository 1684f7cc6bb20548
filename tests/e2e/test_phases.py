"""Every request phase end to end (Python*Handler directives, mod_python semantics), one real
Apache per MPM serving tests/e2e/apps/phases.py and hmod.py."""
from __future__ import annotations

import base64
import json
import shutil
import time
from pathlib import Path
from typing import Callable, Iterator

import pytest

from harness import Apache, MPMS, wait_log

APPS = Path(__file__).parent / "apps"

CONF = """
CustomLog @ROOT@/access.log "%U %>s"
PythonPath "sys.path + ['@ROOT@/apps']"
PythonOption realdir @ROOT@/htdocs/real
PythonOption extradir @ROOT@/apps/extra
PythonInitHandler phases::init_server
PythonPostReadRequestHandler phases::postread
PythonTransHandler phases::trans

# The first virtual host is the default one (it inherits the server-level handlers).
<VirtualHost 127.0.0.1:*>
    ServerName default.test
    DocumentRoot @ROOT@/htdocs
</VirtualHost>
<VirtualHost 127.0.0.1:*>
    ServerName vhost.test
    DocumentRoot @ROOT@/htdocs
    PythonTransHandler phases::vhost_trans
</VirtualHost>

<Location /ph/trail>
    SetHandler modpy
    PythonInitHandler phases::init_dir
    PythonHeaderParserHandler phases::headerparser
    PythonAccessHandler phases::access
    PythonTypeHandler phases::typehandler
    PythonFixupHandler phases::fixup
    PythonHandler phases::content_with_cleanup
    PythonLogHandler phases::loghandler
    PythonCleanupHandler phases::cleanuphandler
</Location>
<Location /ph/access>
    SetHandler modpy
    PythonAccessHandler phases::access
    PythonHandler phases::content
</Location>
<Location /ph/authen>
    SetHandler modpy
    AuthType Basic
    AuthName "ph realm"
    Require valid-user
    PythonAuthenHandler phases::authen
    PythonAuthzHandler phases::authz
    PythonHandler phases::content
</Location>
<Location /ph/token>
    SetHandler modpy
    AuthType Basic
    AuthName "token"
    Require valid-user
    PythonAuthenHandler phases::authen_token
    PythonHandler phases::content
</Location>
<Location /ph/nouser>
    SetHandler modpy
    AuthType Basic
    AuthName "nouser"
    Require valid-user
    PythonAuthenHandler phases::authen_ok_without_user
    PythonHandler phases::content
</Location>
<Directory @ROOT@/htdocs/typed>
    PythonTypeHandler phases::set_type
</Directory>
<Directory @ROOT@/htdocs/ext>
    PythonFixupHandler phases::ext_fixup | .txt
</Directory>
<Location /ph/multi_fixup>
    SetHandler modpy
    PythonFixupHandler phases::rec_a phases::rec_declined
    PythonFixupHandler phases::rec_b
    PythonHandler phases::content
</Location>
<Location /ph/multi_stop>
    SetHandler modpy
    PythonFixupHandler phases::rec_a phases::forbidden phases::rec_b
    PythonHandler phases::content
</Location>
<Location /ph/multi_type>
    SetHandler modpy
    PythonTypeHandler phases::type_declined phases::type_ok phases::type_never
    PythonHandler phases::content
</Location>
<Location /ph/multi_content>
    SetHandler modpy
    PythonHandler phases::write_a phases::write_b
</Location>
<Location /ph/content_declined>
    SetHandler modpy
    PythonHandler phases::write_declined phases::write_a
</Location>
<Location /ph/hmod>
    SetHandler modpy
    PythonHandlerModule hmod
</Location>
<Location /ph/add>
    SetHandler modpy
    PythonAccessHandler phases::adds_handlers
</Location>
<Location /ph/add_dir>
    SetHandler modpy
    PythonAccessHandler phases::adds_with_dir
    PythonHandler phases::content
</Location>
<Directory @ROOT@/htdocs/ht>
    AllowOverride All
</Directory>
<Location /ph/redirect_fixup>
    SetHandler modpy
    PythonFixupHandler phases::redirect_in_fixup
    PythonHandler phases::content
</Location>
<Location /ph/badret>
    SetHandler modpy
    PythonAccessHandler phases::returns_bad
    PythonHandler phases::content
</Location>
<Location /ph/raise_debug>
    SetHandler modpy
    PythonDebug On
    PythonAccessHandler phases::boom
    PythonHandler phases::content
</Location>
"""

# phase directive -> extra lines needed for Apache to run that phase
RAISE = {
    "PythonInitHandler": "",
    "PythonHeaderParserHandler": "",
    "PythonAccessHandler": "",
    "PythonAuthenHandler": "AuthType Basic\n    AuthName r\n    Require valid-user",
    "PythonAuthzHandler": "AuthType Basic\n    AuthName r\n    Require valid-user\n    PythonAuthenHandler phases::authen",
    "PythonTypeHandler": "",
    "PythonFixupHandler": "",
    "PythonHandler": "",
    "PythonLogHandler": "",
    "PythonCleanupHandler": "",
}

ALICE = {"Authorization": "Basic " + base64.b64encode(b"alice:secret").decode()}


def conf() -> str:
    parts = [CONF]
    for directive, extra in RAISE.items():
        content = "" if directive == "PythonHandler" else "PythonHandler phases::content"
        parts.append(
            f"<Location /ph/raise/{directive}>\n    SetHandler modpy\n    {extra}\n"
            f"    {directive} phases::boom\n    {content}\n</Location>"
        )
    return "\n".join(parts)


@pytest.fixture(scope="module", params=MPMS)
def server(request: pytest.FixtureRequest) -> Iterator[Apache]:
    a = Apache(conf(), mpm=request.param, loglevel="info", extra_modules=("authn_core", "authz_user", "auth_basic"))
    shutil.copytree(APPS, a.root / "apps")
    for name, text in {
        "real/file.txt": "the real file\n",
        "typed/x.txt": "typed\n",
        "ext/a.txt": "a\n",
        "ext/b.html": "<p>b</p>\n",
        "ht/page.txt": "ht\n",
        "ht/.htaccess": "PythonFixupHandler phases::fixup\nPythonAccessHandler phases::access\n",
    }.items():
        p = a.root / "htdocs" / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    a.start()
    yield a
    a.stop()
    log = a.log_text()
    assert "Segmentation fault" not in log and "exit signal" not in log, log[-3000:]
    a.remove()




def get_json(a: Apache, path: str, **kw) -> dict:
    status, _, body = a.get(path, **kw)
    assert status == 200, (status, body[:2000], a.log_text()[-2000:])
    return json.loads(body)


SERVER_PHASES = "init_server:PythonInitHandler;postread:PythonPostReadRequestHandler;trans:PythonTransHandler;"


def test_every_phase_runs_in_order_and_notes_carry_across(server: Apache) -> None:
    status, headers, body = server.get("/ph/trail")
    assert status == 200, body
    f = json.loads(body)
    assert f["trail"] == (
        SERVER_PHASES
        + "init_dir:PythonInitHandler;headerparser:PythonHeaderParserHandler;"
        "access:PythonAccessHandler;type:PythonTypeHandler;fixup:PythonFixupHandler;"
        "content:PythonHandler;"
    )
    assert f["phase"] == "PythonHandler"
    assert headers["X-Fixup"] == "ran"
    assert f["config"]["PythonFixupHandler"] == "phases::fixup"
    assert f["config"]["PythonInitHandler"] == "phases::init_dir"
    assert f["config"]["PythonTransHandler"] == "phases::trans"
    assert f["config"]["PythonHandler"] == "phases::content_with_cleanup"
    # The log phase sees the final status and the notes of every earlier phase.
    wait_log(server, "modpy-log-handler uri=/ph/trail status=200 trail=" + f["trail"] + " phase=PythonLogHandler")
    # PythonCleanupHandler runs at the request pool's cleanup, after req.register_cleanup().
    log = wait_log(server, "modpy-cleanup-handler uri=/ph/trail phase=PythonCleanupHandler")
    lines = log.splitlines()
    reg = max(i for i, l in enumerate(lines) if "modpy-register-cleanup /ph/trail" in l)
    cln = max(i for i, l in enumerate(lines) if "modpy-cleanup-handler uri=/ph/trail" in l)
    assert reg < cln


def test_server_level_init_is_not_run_again_in_header_parser(server: Apache) -> None:
    f = get_json(server, "/ph/access")
    assert f["trail"] == SERVER_PHASES + "access:PythonAccessHandler;content:PythonHandler;"


def test_post_read_request_status_ends_the_request(server: Apache) -> None:
    status, _, body = server.get("/ph/trail", headers={"X-Postread": "forbid"})
    assert status == 403 and b"trail" not in body


def test_trans_handler_sets_filename(server: Apache) -> None:
    status, _, body = server.get("/ph/virtual/file.txt")
    assert (status, body) == (200, b"the real file\n")
    assert server.get("/ph/virtual/missing.txt")[0] == 404


def test_trans_handler_of_a_virtual_host(server: Apache) -> None:
    assert server.get("/ph/vhostfile", headers={"Host": "vhost.test"})[0:3:2] == (200, b"the real file\n")
    # the main server's PythonTransHandler does not map it
    assert server.get("/ph/vhostfile")[0] == 404


def test_access_handler_forbidden(server: Apache) -> None:
    assert server.get("/ph/access")[0] == 200
    status, _, body = server.get("/ph/access", headers={"X-Deny": "1"})
    assert status == 403 and b"trail" not in body


def test_authen_and_authz_handlers(server: Apache) -> None:
    status, headers, _ = server.get("/ph/authen")
    assert status == 401 and headers["WWW-Authenticate"] == 'Basic realm="ph realm"'
    f = get_json(server, "/ph/authen", headers=ALICE)
    assert f["user"] == "alice"
    assert "authen:PythonAuthenHandler;authz:PythonAuthzHandler;" in f["trail"]
    wrong = {"Authorization": "Basic " + base64.b64encode(b"alice:nope").decode()}
    assert server.get("/ph/authen", headers=wrong)[0] == 401
    bob = {"Authorization": "Basic " + base64.b64encode(b"bob:secret").decode()}
    status, _, body = server.get("/ph/authen", headers=bob)
    assert status == 403 and b"trail" not in body


def test_authen_handler_setting_user(server: Apache) -> None:
    assert get_json(server, "/ph/token", headers={"X-Token": "t0ken"})["user"] == "tokenuser"
    assert server.get("/ph/token")[0] == 401


def test_authen_ok_without_user_is_an_error(server: Apache) -> None:
    status, _, body = server.get("/ph/nouser")
    assert status == 500 and b"trail" not in body
    wait_log(server, "PythonAuthenHandler returned OK but req.user is not set")


def test_type_handler_runs_before_mod_mime(server: Apache) -> None:
    status, headers, body = server.get("/typed/x.txt")
    assert (status, body) == (200, b"typed\n")
    assert headers["Content-Type"] == "application/x-modpy-type"


def test_extension_restriction(server: Apache) -> None:
    assert server.get("/ext/a.txt")[1]["X-Ext-Fixup"] == "a.txt"
    status, headers, _ = server.get("/ext/b.html")
    assert status == 200 and "X-Ext-Fixup" not in headers


def test_several_handlers_run_all_phase(server: Apache) -> None:
    # fixups: OK and DECLINED both go on; two lines in one section add up.
    f = get_json(server, "/ph/multi_fixup")
    assert f["trail"].endswith("a:PythonFixupHandler;declined:PythonFixupHandler;b:PythonFixupHandler;content:PythonHandler;")


def test_several_handlers_stop_on_error(server: Apache) -> None:
    status, _, body = server.get("/ph/multi_stop")
    assert status == 403 and b"trail" not in body
    time.sleep(0.2)
    assert "rec_b ran for /ph/multi_stop" not in server.log_text()


def test_several_handlers_run_first_phase(server: Apache) -> None:
    # type_checker: DECLINED goes on, OK stops (type_never does not run).
    f = get_json(server, "/ph/multi_type")
    assert f["ctype"] == "application/x-first"
    assert "type_declined:PythonTypeHandler;type_ok:PythonTypeHandler;content" in f["trail"]


def test_several_content_handlers(server: Apache) -> None:
    assert server.get("/ph/multi_content")[0:3:2] == (200, b"ab")
    # The content phase stops at the first result other than OK: DECLINED goes to Apache's
    # default handler (no file here: 404) and write_a never runs.
    status, _, body = server.get("/ph/content_declined")
    assert status == 404 and b"a" != body


def test_handler_module(server: Apache) -> None:
    status, headers, body = server.get("/ph/hmod")
    assert status == 200
    assert body == b"hmod content after fixup:PythonFixupHandler"
    assert headers["X-Hmod"] == "fixup"
    wait_log(server, "hmod-log-handler /ph/hmod")


def test_add_handler(server: Apache) -> None:
    status, headers, body = server.get("/ph/add")
    assert status == 200, body
    f = json.loads(body)
    assert f["trail"].endswith(
        "adder:PythonAccessHandler;added_fixup:PythonFixupHandler;"
        "added_fixup2:PythonFixupHandler;content:PythonHandler;"
    )
    assert headers["X-Notes"] == "IndexError,ValueError"


def test_add_handler_with_directory(server: Apache) -> None:
    status, headers, _ = server.get("/ph/add_dir")
    assert status == 200
    assert headers["X-Dynonly"] == "dynonly.py:PythonFixupHandler"


def test_phase_handlers_in_htaccess(server: Apache) -> None:
    status, headers, body = server.get("/ht/page.txt")
    assert (status, body, headers["X-Fixup"]) == (200, b"ht\n", "ran")
    assert server.get("/ht/page.txt", headers={"X-Deny": "1"})[0] == 403


def test_internal_redirect_from_fixup(server: Apache) -> None:
    status, _, body = server.get("/ph/redirect_fixup")
    assert status == 200, body
    f = json.loads(body)
    # The redirect is a new request with fresh notes, served by /ph/trail's handlers.
    assert f["trail"].startswith(SERVER_PHASES + "init_dir:PythonInitHandler;")
    assert "redirecting" not in f["trail"] and f["trail"].endswith("content:PythonHandler;")


@pytest.mark.parametrize("directive", list(RAISE))
def test_exception_in_every_phase(server: Apache, directive: str) -> None:
    path = f"/ph/raise/{directive}"
    status, _, body = server.get(path, headers=ALICE)
    if directive in ("PythonLogHandler", "PythonCleanupHandler"):
        # The response is already sent; the traceback is logged.
        assert status == 200
    else:
        assert status == 500 and b"trail" not in body and b"boom" not in body
    log = wait_log(server, f"ValueError: boom in {directive}")
    assert f"mod_py: {directive} 'phases::boom' failed for {path}:" in log


def test_failing_log_handler_does_not_stop_the_access_log(server: Apache) -> None:
    assert server.get("/ph/raise/PythonLogHandler")[0] == 200
    wait_log(server, "ValueError: boom in PythonLogHandler")
    deadline = time.time() + 5
    while "/ph/raise/PythonLogHandler 200" not in (server.root / "access.log").read_text():
        assert time.time() < deadline
        time.sleep(0.05)


@pytest.mark.parametrize("header", ["X-Postread", "X-Trans"])
def test_exception_in_server_level_phases(server: Apache, header: str) -> None:
    status, _, body = server.get("/ph/access", headers={header: "raise"})
    assert status == 500 and b"trail" not in body
    wait_log(server, "RuntimeError: boom in " + ("postread" if header == "X-Postread" else "trans"))


def test_bad_return_value_in_a_phase(server: Apache) -> None:
    status, _, body = server.get("/ph/badret")
    assert status == 500 and b"trail" not in body
    wait_log(server, "handler 'phases::returns_bad' returned 'not a status' (str)")


def test_python_debug_traceback_from_access_phase(server: Apache) -> None:
    status, _, body = server.get("/ph/raise_debug")
    assert status == 500
    assert b"ValueError: boom in PythonAccessHandler" in body and b"trail" not in body


# ---- configuration errors (configtest) ----

@pytest.mark.parametrize("conf,needle", [
    ("<Location /x>\n    PythonTransHandler phases::trans\n</Location>", "PythonTransHandler not allowed in <Location> context"),
    ("<Directory /tmp>\n    PythonPostReadRequestHandler m\n</Directory>", "PythonPostReadRequestHandler not allowed in <Directory> context"),
    ("PythonAccessHandler 9bad", "PythonAccessHandler: '9bad': '9bad' is not a Python module name"),
    ("PythonFixupHandler m |", "PythonFixupHandler: '|' must be followed by file extensions"),
    ("PythonLogHandler", "PythonLogHandler: expected at least one handler"),
])
def test_bad_phase_directives(apache: Callable[..., Apache], conf: str, needle: str) -> None:
    a = apache(conf, start=False)
    r = a.configtest()
    assert r.returncode != 0 and needle in r.stderr + r.stdout, r.stderr


def test_no_python_handler_configured_serves_static(apache: Callable[..., Apache]) -> None:
    """With mod_py loaded and no Python*Handler, every phase declines (static files work)."""
    a = apache("", files={"htdocs/s.txt": "static\n"})
    assert a.get("/s.txt")[0:3:2] == (200, b"static\n")
