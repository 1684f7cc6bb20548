"""mod_python.publisher as 3.5 sites use it, under each MPM: calls with form arguments,
default index, objects, and every refusal of 3.5's traversal rules (logged)."""
from __future__ import annotations

import base64
import shutil
from pathlib import Path
from typing import Iterator

import pytest

from harness import MPMS, Apache, wait_log

APPS = Path(__file__).parent / "mp_apps"


@pytest.fixture(scope="module", params=MPMS)
def server(request: pytest.FixtureRequest) -> Iterator[Apache]:
    a = Apache("""
<Directory @ROOT@/htdocs/site>
    SetHandler mod_python
    PythonHandler mod_python.publisher
</Directory>
""", mpm=request.param, extra_modules=("authn_core",))
    shutil.copytree(APPS / "site", a.root / "htdocs" / "site")
    a.start()
    yield a
    a.stop()
    assert "exit signal" not in a.log_text()
    a.remove()


def test_published_functions_and_objects(server: Apache) -> None:
    status, headers, body = server.get("/site/pub.py/hello?name=apache&n=3")
    assert (status, body) == (200, b"hello apache x3") and headers["Content-Type"].startswith("text/plain")
    assert server.get("/site/pub.py/hello")[2] == b"hello world x1"
    status, headers, body = server.get("/site/pub.py")
    assert status == 200 and b"index page" in body and headers["Content-Type"].startswith("text/html")
    assert server.get("/site/pub.py/")[2] == server.get("/site/pub.py/index")[2]
    assert server.get("/site/pub.py/obj/shout?word=yes")[2] == b"YES"
    assert server.get("/site/pub.py/obj/colour")[2] == b"blue"
    assert server.get("/site/pub.py/kwargs?b=1&a=2")[2] == b"a,b"
    assert server.request("POST", "/site/pub.py/hello", body=b"name=posted",
                          headers={"Content-Type": "application/x-www-form-urlencoded"})[2] == b"hello posted x1"


def test_module_and_object_from_the_url(server: Apache) -> None:
    # 3.5's rules: the .py may be left out, a name without a file is an object of index.py,
    # one trailing slash after the object path is dropped.
    assert server.get("/site/pub")[2] == server.get("/site/pub.py")[2]
    assert server.get("/site/")[2] == b"site index"
    assert server.get("/site/extra")[2] == b"extra from index.py"
    assert server.get("/site/pub.py/obj/colour/")[2] == b"blue"
    assert server.get("/site/missing/deeper")[0] == 404


@pytest.mark.parametrize("path,status,logged", [
    ("/site/pub.py/_private", 403, "it starts with an underscore"),
    ("/site/pub.py/obj/_hidden", 403, "it starts with an underscore"),
    ("/site/pub.py/obj/__class__", 403, "it starts with an underscore"),
    ("/site/pub.py/hello/__globals__", 403, "it starts with an underscore"),
    ("/site/pub.py/os", 403, "which is not published"),
    ("/site/pub.py/os/system", 403, "module is not traversable"),
    ("/site/pub.py/Klass", 403, "which is not published"),
    ("/site/pub.py/Klass/method", 403, "type is not traversable"),
    ("/site/pub.py/hello/__code__", 403, "it starts with an underscore"),
    ("/site/pub.py/nothing", 404, None),
])
def test_refusals(server: Apache, path: str, status: int, logged: str | None) -> None:
    assert server.get(path)[0] == status
    if logged:
        wait_log(server, logged)


def test_auth_and_access(server: Apache) -> None:
    def auth(user: str, pw: str) -> dict[str, str]:
        return {"Authorization": "Basic " + base64.b64encode(f"{user}:{pw}".encode()).decode()}
    status, headers, _ = server.get("/site/locked.py")
    assert status == 401 and headers["WWW-Authenticate"] == 'Basic realm="Members"'
    assert server.get("/site/locked.py", headers=auth("alice", "wrong"))[0] == 401
    assert server.get("/site/locked.py", headers=auth("bob", "builder"))[0] == 403  # not in __access__
    status, _, body = server.get("/site/locked.py", headers=auth("alice", "wonder"))
    assert (status, body) == (200, b"members only: alice")


def test_auth_in_function_body(server: Apache) -> None:
    """3.5 sites set __auth__ inside the published function's body."""
    cred = {"Authorization": "Basic " + base64.b64encode(b"carol:pw").decode()}
    status, headers, _ = server.get("/site/pub.py/inner_auth")
    assert status == 401 and headers["WWW-Authenticate"] == 'Basic realm="Inner"'
    assert server.get("/site/pub.py/inner_auth", headers=cred)[2] == b"inner ok"
    assert server.get("/site/pub.py/computed_auth", headers=cred)[0] == 403
    wait_log(server, "neither a literal nor a function without closure; denied")
    # Nested functions as __auth__ / __access__, of a function and of a method.
    assert server.get("/site/pub.py/nested_auth")[0] == 401
    assert server.get("/site/pub.py/nested_auth", headers=cred)[2] == b"nested ok, auth_called=1"
    dave = {"Authorization": "Basic " + base64.b64encode(b"dave:pw").decode()}
    assert server.get("/site/pub.py/desk/method", headers=cred)[0] == 401
    assert server.get("/site/pub.py/desk/method", headers=dave)[2] == b"method ok"
    assert server.get("/site/pub.py/closure_auth", headers=cred)[0] == 403
