"""mod_wsgi directives beyond WSGIScriptAlias, end to end under each MPM: AddHandler
wsgi-script (with and without Options ExecCGI), WSGIHandlerScript, WSGIImportScript,
WSGICallableObject, WSGIErrorOverride, WSGIRestrictEmbedded/WSGIProcessGroup refusals, a
request body over LimitRequestBody, and the one-time application-group notice."""
from __future__ import annotations

import textwrap
import time
from pathlib import Path
from typing import Iterator

import pytest

from harness import Apache, MPMS, wait_log

FILES = {
    "cgi/app.wsgi": """
        def application(environ, start_response):
            start_response("200 OK", [("Content-Type", "text/plain")])
            return [b"run through AddHandler"]
    """,
    "nocgi/app.wsgi": """
        def application(environ, start_response):
            start_response("200 OK", [])
            return [b"must not run"]
    """,
    "handler.py": """
        def handle_request(environ, start_response):
            with open(environ["SCRIPT_FILENAME"], "rb") as f:
                body = f.read().upper()
            start_response("200 OK", [("Content-Type", "text/plain")])
            return [body, environ["mod_wsgi.handler_script"].encode()]
        def application(environ, start_response):
            start_response("200 OK", [])
            return [b"wrong callable"]
    """,
    "docs/page.txt": "lower case text\n",
    "preload.wsgi": """
        import os, time
        LOADED_AT = time.time()
        PID = os.getpid()
        def application(environ, start_response):
            import sys, json
            start_response("200 OK", [("Content-Type", "application/json")])
            return [json.dumps({"pid": PID, "now": os.getpid(), "loaded_before": LOADED_AT < float(environ["mod_wsgi.request_start"]) / 1e6}).encode()]
    """,
    "callable.wsgi": """
        def app(environ, start_response):
            start_response("200 OK", [])
            return [b"custom callable"]
    """,
    "notfound.wsgi": """
        def application(environ, start_response):
            start_response("404 Not Found", [("Content-Type", "text/plain")])
            return [b"the app's own 404 body"]
    """,
    "body.wsgi": """
        def application(environ, start_response):
            data = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
            start_response("200 OK", [])
            return [b"%d" % len(data)]
    """,
    "errors/404.html": "custom error document\n",
    "uri.wsgi": """
        def application(environ, start_response):
            start_response("200 OK", [("Content-Type", "text/plain")])
            keys = ("REQUEST_URI", "SCRIPT_NAME", "PATH_INFO", "QUERY_STRING", "GATEWAY_INTERFACE")
            return [repr([environ.get(k) for k in keys] + ["PATH_TRANSLATED" in environ]).encode()]
    """,
}


@pytest.fixture(scope="module", params=MPMS)
def server(request: pytest.FixtureRequest) -> Iterator[Apache]:
    a = Apache(
        """
        Alias /cgi @ROOT@/cgi
        Alias /nocgi @ROOT@/nocgi
        Alias /docs @ROOT@/docs
        Alias /errors @ROOT@/errors
        <Directory @ROOT@>
            Require all granted
        </Directory>
        <Directory @ROOT@/cgi>
            Options +ExecCGI
            AddHandler wsgi-script .wsgi
        </Directory>
        <Directory @ROOT@/nocgi>
            Options -ExecCGI
            AddHandler wsgi-script .wsgi
        </Directory>
        WSGIHandlerScript upper-handler @ROOT@/handler.py
        <Directory @ROOT@/docs>
            Options +ExecCGI
            AddHandler upper-handler .txt
        </Directory>
        WSGIImportScript @ROOT@/preload.wsgi process-group=%{GLOBAL} application-group=%{GLOBAL}
        WSGIScriptAlias /preload @ROOT@/preload.wsgi
        WSGIScriptAlias /callable @ROOT@/callable.wsgi
        <Location /callable>
            WSGICallableObject app
        </Location>
        WSGIScriptAlias /override @ROOT@/notfound.wsgi
        WSGIScriptAlias /passthrough @ROOT@/notfound.wsgi
        <Location /override>
            WSGIErrorOverride On
        </Location>
        ErrorDocument 404 /errors/404.html
        WSGIScriptAlias /daemon @ROOT@/callable.wsgi process-group=somegroup
        WSGIScriptAlias /body @ROOT@/body.wsgi
        WSGIScriptAlias /uri @ROOT@/uri.wsgi
        WSGIScriptAlias /current-uri @ROOT@/uri.wsgi
        <Location /current-uri>
            CGIVar REQUEST_URI current-uri
        </Location>
        <Location /body>
            LimitRequestBody 1000
        </Location>
        """,
        mpm=request.param,
        processes=1,
    )
    for name, text in FILES.items():
        p = a.root / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(textwrap.dedent(text).lstrip())
    a.conf.write_text(a.conf.read_text().replace("@ROOT@", str(a.root)))
    a.start()
    yield a
    a.stop()
    log = a.log_text()
    assert "Segmentation fault" not in log and "exit signal" not in log, log[-3000:]
    a.remove()




def test_addhandler_needs_execcgi(server: Apache) -> None:
    assert server.get("/cgi/app.wsgi")[0:3:2] == (200, b"run through AddHandler")
    status, _, body = server.get("/nocgi/app.wsgi")
    assert status == 403 and b"must not run" not in body
    wait_log(server, f"Options ExecCGI is off in this directory: {server.root}/nocgi/app.wsgi")


def test_cgi_request_line_variables(server: Apache) -> None:
    """REQUEST_URI as sent, or as `CGIVar REQUEST_URI current-uri` says (r->uri, no query);
    SCRIPT_NAME / PATH_INFO split where the script matched; no PATH_TRANSLATED (its
    subrequest is not run, as in mod_wsgi 6)."""
    body = server.get("/uri/a/b?x=1")[2].decode()
    assert body == "['/uri/a/b?x=1', '/uri', '/a/b', 'x=1', 'CGI/1.1', False]"
    body = server.get("/current-uri/a?x=1")[2].decode()
    assert body == "['/current-uri/a', '/current-uri', '/a', 'x=1', 'CGI/1.1', False]"


def test_handler_script_serves_files_with_handle_request(server: Apache) -> None:
    status, _, body = server.get("/docs/page.txt")
    assert status == 200 and body == b"LOWER CASE TEXT\n" + f"{server.root}/handler.py".encode()


def test_import_script_preloads_at_child_start(server: Apache) -> None:
    import json

    status, _, body = server.get("/preload")
    r = json.loads(body)
    assert status == 200 and r["pid"] == r["now"] and r["loaded_before"] is True


def test_callable_object(server: Apache) -> None:
    assert server.get("/callable")[2] == b"custom callable"


def test_error_override(server: Apache) -> None:
    status, _, body = server.get("/override")
    assert status == 404 and body == b"custom error document\n"
    status, _, body = server.get("/passthrough")
    assert status == 404 and body == b"the app's own 404 body"


def test_undefined_process_group_refused_clearly(server: Apache) -> None:
    assert server.get("/daemon")[0] == 500
    wait_log(server, "no WSGI daemon process called 'somegroup' has been configured")


def test_body_over_limit_is_413(server: Apache) -> None:
    assert server.request("POST", "/body", body=b"x" * 500)[2] == b"500"
    assert server.request("POST", "/body", body=b"x" * 5000)[0] == 413


def test_application_group_notice_once(server: Apache) -> None:
    for _ in range(3):
        server.get("/callable")
    log = wait_log(server, "mod_py runs one interpreter per process, so every application group")
    assert log.count("every application group of this process shares it") <= 2


def test_restrict_embedded(apache) -> None:
    a = apache(
        """
        WSGIRestrictEmbedded On
        WSGIScriptAlias /x @ROOT@/x.wsgi
        <Directory @ROOT@>
            Require all granted
        </Directory>
        """,
        files={"x.wsgi": "def application(e, s):\n    s('200 OK', [])\n    return [b'x']\n"},
    )
    assert a.get("/x")[0] == 500
    wait_log(a, "embedded mode is disabled by WSGIRestrictEmbedded On")
