"""The rest of the request API end to end, under each MPM: subrequests (lookup_uri,
lookup_file, run, destroy_sub_req and their liveness), filters added from Python
(add_output_filter / add_input_filter with Apache's C filters), server-level cleanups."""
from __future__ import annotations

import gzip
import http.client
import json
import shutil
import time
from pathlib import Path
from typing import Callable, Iterator

import pytest

import harness
from harness import Apache, MPMS

APPS = Path(__file__).parent / "apps"
MODULES = ("deflate", "include", "case_filter", "case_filter_in")

CONF = """
PythonPath "sys.path + ['@ROOT@/apps']"
PythonOption htdocs @ROOT@/htdocs
<Location /sr>
    SetHandler modpy
</Location>
# A handler with a file name (PythonHandler in a <Location> has none, as in mod_python):
# lookup_file resolves relative to it.
Alias /srfile @ROOT@/htdocs/dir
<Directory @ROOT@/htdocs/dir>
    <Files lookup>
        SetHandler modpy
        PythonHandler subreq::lookup
    </Files>
</Directory>
<Location /sr/denied>
    Require all denied
</Location>
<Location /sr/target>
    PythonFixupHandler subreq::target_fixup
    PythonHandler subreq::target
</Location>
<Location /sr/fixup_lookup>
    PythonFixupHandler subreq::fixup_lookup
    PythonHandler subreq::show_notes
</Location>
<Location /sr/cleanup_lookup>
    PythonHandler subreq::cleanup_lookup_content
    PythonCleanupHandler subreq::cleanup_lookup
</Location>
<Location /sr/ssi>
    Options +Includes
</Location>
<Directory @ROOT@/htdocs/gz>
    PythonFixupHandler subreq::fixup_deflate
</Directory>
"""

ROUTES = ["lookup", "nofile", "run", "destroy", "keep", "deflate", "ssi", "upper", "upper_input", "unknown_filter"]


def conf() -> str:
    parts = [CONF]
    for r in ROUTES:
        parts.append(f"<Location /sr/{r}>\n    PythonHandler subreq::{r}\n</Location>")
    return "\n".join(parts)


@pytest.fixture(scope="module", params=MPMS)
def server(request: pytest.FixtureRequest) -> Iterator[Apache]:
    a = Apache(conf(), mpm=request.param, loglevel="info", extra_modules=MODULES)
    shutil.copytree(APPS, a.root / "apps")
    htdocs = a.root / "htdocs"
    (htdocs / "static.txt").write_text("static content\n")
    (htdocs / "dir").mkdir()
    (htdocs / "dir" / "other.txt").write_text("other\n")
    (htdocs / "gz").mkdir()
    (htdocs / "gz" / "big.txt").write_text("compress me please\n" * 2000)
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



def wait_log(a: Apache, needle: str, timeout: float = 10.0) -> str:
    return harness.wait_log(a, needle, timeout)


def test_lookup_uri_and_file(server: Apache) -> None:
    f = get_json(server, "/srfile/lookup")
    assert f["status"] == 200 and f["uri"] == "/static.txt"
    assert f["filename"] == str(server.root / "htdocs" / "static.txt")
    assert f["content_type"] == "text/plain"
    assert f["main_is_req"] is True and f["initial"] is False and f["same_object"] is True
    assert f["denied_status"] == 403
    assert f["file_filename"] == str(server.root / "htdocs" / "dir" / "other.txt")
    assert f["file_ctype"] == "text/plain"
    assert f["relative_uri"] == "/srfile/dir/other.txt"
    assert f["repr"] == "<modpy.apache.Request GET /static.txt>"


def test_lookup_without_filename_or_uri(server: Apache) -> None:
    f = get_json(server, "/sr/nofile")
    assert f["file"].startswith("ValueError: lookup_file needs req.filename")
    assert f["uri"] == "ValueError: a relative URI needs req.uri, which is not set"
    assert f["absolute"] == 200


def test_no_subrequests_while_the_request_is_cleaned_up(server: Apache) -> None:
    assert server.get("/sr/cleanup_lookup")[2] == b"ok"
    ending = "ValueError: the request is being cleaned up: no new subrequests"
    wait_log(server, "cleanup handler lookup: " + ending)
    wait_log(server, "register_cleanup lookup: " + ending)


def test_run_subrequests_into_the_response(server: Apache) -> None:
    status, _, body = server.get("/sr/run")
    assert status == 200
    assert body == (
        b"before|static content\n|middle|"
        b"target args=x=1 initial=False main=/sr/run notes=fixup-ran-in-subrequest"
        b"|after 0 0 403"
    )


def test_destroy_sub_req(server: Apache) -> None:
    f = get_json(server, "/sr/destroy")
    gone = "RuntimeError: the request this object wraps has ended; it cannot be used any more"
    assert f["before"] == "/static.txt"
    assert f["uri_after"] == gone and f["run_after"] == gone and f["notes_after"] == gone
    assert f["destroy_again"] == gone and f["alive"] is False
    # The parent request and its objects are unaffected.
    assert f["parent_uri"] == "/sr/destroy" and f["parent_notes"] == "ok"
    assert f["destroy_main"].startswith("RuntimeError: only a subrequest made with lookup_uri()")
    assert f["run_main"].startswith("RuntimeError: only a subrequest made with lookup_uri()")
    assert f["second_destroyed"] is False


def test_subrequest_outliving_its_request_raises(server: Apache) -> None:
    c = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    results = []
    for _ in range(2):  # same connection: the same child serves both
        c.request("GET", "/sr/keep")
        results.append(json.loads(c.getresponse().read()))
    c.close()
    assert results[0] == {"kept": True}
    gone = "RuntimeError: the request this object wraps has ended; it cannot be used any more"
    assert results[1] == {"uri": gone, "run": gone, "alive": False}


def test_lookup_from_a_fixup(server: Apache) -> None:
    assert get_json(server, "/sr/fixup_lookup") == {"sub_ctype": "text/plain"}


def test_add_output_filter_deflate(server: Apache) -> None:
    status, headers, body = server.get("/sr/deflate", headers={"Accept-Encoding": "gzip"})
    assert status == 200 and headers["Content-Encoding"] == "gzip"
    assert gzip.decompress(body) == b"0123456789abcdef\n" * 1000
    # Without Accept-Encoding DEFLATE passes the body through.
    assert server.get("/sr/deflate")[2] == b"0123456789abcdef\n" * 1000


def test_add_output_filter_from_fixup_on_static_file(server: Apache) -> None:
    status, headers, body = server.get("/gz/big.txt", headers={"Accept-Encoding": "gzip"})
    assert status == 200 and headers["Content-Encoding"] == "gzip"
    assert gzip.decompress(body) == b"compress me please\n" * 2000


def test_add_output_filter_includes_and_case(server: Apache) -> None:
    assert server.get("/sr/ssi")[2] == b"uri=/sr/ssi;"
    assert server.get("/sr/upper")[2] == b"SHOUT THIS"


def test_add_input_filter(server: Apache) -> None:
    status, _, body = server.request("POST", "/sr/upper_input", body=b"quiet words")
    assert (status, body) == (200, b"QUIET WORDS")


def test_unknown_filter_name(server: Apache) -> None:
    f = get_json(server, "/sr/unknown_filter")
    assert f["out"] == "ValueError: no output filter named 'NO_SUCH_FILTER' is registered"
    assert f["in"] == "ValueError: no input filter named 'NO_SUCH_FILTER' is registered"


def test_server_register_cleanup_runs_at_child_exit(apache: Callable[..., Apache]) -> None:
    a = apache(
        'PythonPath "sys.path + [\'@ROOT@/apps\']"\n<Location /c>\n SetHandler modpy\n'
        " PythonHandler subreq::server_cleanup\n</Location>",
        start=False,
    )
    shutil.copytree(APPS, a.root / "apps")
    a.start()
    assert a.get("/c")[0:3:2] == (200, b"registered")
    time.sleep(0.3)
    assert "server-cleanup-ran" not in a.log_text()  # not at the end of the request
    # The child runs it when it exits (here: Apache shuts down).
    a.stop()
    assert "server-cleanup-ran child-exit" in a.log_text()
