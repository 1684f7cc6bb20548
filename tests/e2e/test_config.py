"""Configuration: every context PythonHandler works in, PythonAutoReload, and bad
configuration giving clear errors (apachectl configtest style) without crashing Apache."""
from __future__ import annotations

import os
import time
from typing import Callable

import pytest

from harness import Apache

HELLO = '''
import os
from modpy import apache
NAME = os.path.basename(__file__)[:-3]
def handler(req):
    req.content_type = "text/plain"
    req.write(("%s from " + NAME + "\\n") % req.uri)
    return apache.OK
def other(req):
    req.write(b"other")
    return apache.OK
'''


def test_contexts(apache: Callable[..., Apache]) -> None:
    a = apache(
        """
        PythonPath "sys.path + ['@ROOT@/lib']"
        <Directory @ROOT@/htdocs/dir>
            SetHandler modpy
            PythonHandler dirapp
        </Directory>
        <Directory @ROOT@/htdocs/files>
            <Files "*.py">
                SetHandler modpy
                PythonHandler filesapp
            </Files>
        </Directory>
        <Directory @ROOT@/htdocs/ht>
            AllowOverride All
        </Directory>
        <Directory @ROOT@/htdocs/ext>
            AddHandler modpy .py .txt
            PythonHandler extapp::handler | .py
        </Directory>
        <Location /loc>
            SetHandler python-program
            PythonHandler libapp::other
        </Location>
        <VirtualHost 127.0.0.1:*>
            ServerName vhost.test
            DocumentRoot @ROOT@/htdocs
            <Location /v>
                SetHandler modpy
                PythonHandler libapp
            </Location>
        </VirtualHost>
        <VirtualHost 127.0.0.1:*>
            ServerName 127.0.0.1
            DocumentRoot @ROOT@/htdocs
        </VirtualHost>
        """,
        files={
            # found through the <Directory> it is configured in (no PythonPath needed)
            "htdocs/dir/dirapp.py": HELLO,
            "htdocs/dir/page": "",
            "htdocs/files/filesapp.py": HELLO,
            "htdocs/files/x.py": "",
            "htdocs/files/plain.txt": "plain text\n",
            "htdocs/ht/.htaccess": "SetHandler modpy\nPythonHandler htapp\nPythonOption k v\n",
            "htdocs/ht/htapp.py": HELLO,
            "htdocs/ext/extapp.py": HELLO,
            "htdocs/ext/a.py": "",
            "htdocs/ext/b.txt": "static b\n",
            "lib/libapp.py": HELLO,
        },
    )
    assert a.get("/dir/page")[2] == b"/dir/page from dirapp\n"
    assert a.get("/files/x.py")[2] == b"/files/x.py from filesapp\n"
    assert a.get("/files/plain.txt")[2] == b"plain text\n"  # <Files> does not match
    assert a.get("/ht/anything")[2] == b"/ht/anything from htapp\n"
    assert a.get("/ext/a.py")[2] == b"/ext/a.py from extapp\n"
    # `| .py`: the handler does not apply to .txt; mod_py declines and Apache serves the file.
    assert a.get("/ext/b.txt")[0:3:2] == (200, b"static b\n")
    assert a.get("/loc")[2] == b"other"
    assert a.get("/v/x", headers={"Host": "vhost.test"})[2] == b"/v/x from libapp\n"
    assert a.get("/v/x", headers={"Host": "127.0.0.1"})[0] == 404


def test_autoreload(apache: Callable[..., Apache], mpm: str) -> None:
    files = {"lib/re_on.py": HELLO, "lib/re_off.py": HELLO}
    a = apache(
        """
        PythonPath "sys.path + ['@ROOT@/lib']"
        <Location /on>
            SetHandler modpy
            PythonHandler re_on
        </Location>
        <Location /off>
            SetHandler modpy
            PythonHandler re_off
            PythonAutoReload Off
        </Location>
        """,
        files=files,
        processes=1,
        threads=4,
    )
    # one child process (prefork: warm it up so every child has imported both modules)
    for _ in range(8):
        assert a.get("/on")[0] == 200 and a.get("/off")[0] == 200
    changed = HELLO.replace('"%s from "', '"%s CHANGED from "')
    for name in ("re_on", "re_off"):
        p = a.root / "lib" / f"{name}.py"
        p.write_text(changed)
        st = p.stat()
        os.utime(p, (st.st_atime, st.st_mtime + 5))
    time.sleep(1.1)  # PythonAutoReload looks at a module's file at most once a second
    for _ in range(6):
        assert a.get("/on")[2] == b"/on CHANGED from re_on\n"
        assert a.get("/off")[2] == b"/off from re_off\n"


@pytest.mark.parametrize(
    "body,needle",
    [
        ("PythonHandler", "PythonHandler: expected at least one handler"),
        ("PythonHandler 9bad", "PythonHandler: '9bad': '9bad' is not a Python module name"),
        ("PythonHandler mod::fn-x", "is not a Python function name"),
        ("PythonHandler mod | py", "'py' is not a file extension"),
        ("PythonOption a b c", "PythonOption takes 1-2 arguments"),
        ("PythonDebug maybe", "PythonDebug must be On or Off"),
        ("PythonImport 1x", "PythonImport: '1x' is not a Python module name"),
        ("<Location /x>\nPythonImport mod\n</Location>", "PythonImport not allowed in <Location> context"),
        ("PythonPath", "PythonPath: expected a Python expression"),
        ('PythonPath ""', "PythonPath: expected a Python expression"),
        ("WSGITrustedProxies 10.0.0.1 nonsense", "WSGITrustedProxies: \"nonsense\" is not an IP address or network"),
        ("<VirtualHost *:80>\nWSGIPythonHome /usr\n</VirtualHost>", "WSGIPythonHome: cannot occur within <VirtualHost> section"),
        ("WSGIImportScript /x.wsgi callable-object=app", "WSGIImportScript takes only the process-group= and application-group= options"),
        ("WSGIScriptAlias /x", "WSGIScriptAlias: expected URL-path, file-path"),
        ("WSGIScriptAliasMatch ^/(x /y.wsgi", "is not a valid regular expression"),
        ("WSGIScriptReloading maybe", "WSGIScriptReloading: \"maybe\" must be On or Off"),
    ],
)
def test_bad_directives_fail_configtest(apache: Callable[..., Apache], body: str, needle: str) -> None:
    a = apache(body, start=False)
    r = a.configtest()
    out = r.stdout + r.stderr
    assert r.returncode != 0, out
    assert needle in out, out
    assert f"of {a.conf}" in out  # names the file and line
    assert "Syntax error on line" in out


def test_missing_handler_module_logs_and_apache_keeps_serving(apache: Callable[..., Apache]) -> None:
    a = apache(
        """
        PythonImport missing_at_start main_interpreter
        <Location /x>
            SetHandler modpy
            PythonHandler not_there::handler
        </Location>
        """
    )
    assert a.get("/x")[0] == 500
    deadline = time.time() + 5
    while "No module named 'not_there'" not in a.log_text() and time.time() < deadline:
        time.sleep(0.05)
    log = a.log_text()
    assert "PythonImport missing_at_start failed: ModuleNotFoundError" in log
    assert "PythonHandler 'not_there::handler' failed for /x" in log
    assert "No module named 'not_there'" in log
    assert a.proc is not None and a.proc.poll() is None


def test_same_module_name_in_two_directories(apache: Callable[..., Apache]) -> None:
    app = '''
from modpy import apache
def handler(req):
    import helper  # a sibling module of a/app.py
    req.write(("%s %s" % (WHO, helper.WHO)).encode())
    return apache.OK
'''
    a = apache(
        """
        <Directory @ROOT@/htdocs/a>
            SetHandler modpy
            PythonHandler app
        </Directory>
        <Directory @ROOT@/htdocs/b>
            SetHandler modpy
            PythonHandler app
        </Directory>
        """,
        files={
            "htdocs/a/app.py": "WHO = 'a'\n" + app,
            "htdocs/a/helper.py": "WHO = 'helper-a'\n",
            "htdocs/b/app.py": "WHO = 'b'\n" + app.replace("import helper", "helper = None").replace("helper.WHO", "'no helper'"),
        },
    )
    for _ in range(3):
        assert a.get("/a/x")[2] == b"a helper-a"
        assert a.get("/b/x")[2] == b"b no helper"


def test_python_interpreter_accepted_with_one_notice(apache: Callable[..., Apache]) -> None:
    a = apache(
        """
        <Location /x>
            SetHandler modpy
            PythonInterpreter my_app
            PythonHandler lib_interp
        </Location>
        PythonPath "sys.path + ['@ROOT@/lib']"
        """,
        files={"lib/lib_interp.py": HELLO},
        processes=1,
    )
    for _ in range(3):
        assert a.get("/x")[0] == 200
    deadline = time.time() + 5
    while "PythonInterpreter my_app" not in a.log_text() and time.time() < deadline:
        time.sleep(0.05)
    log = a.log_text()
    assert "PythonInterpreter my_app: mod_py runs one interpreter per process" in log
    assert log.count("PythonInterpreter my_app") <= 2  # once per child
