"""Apache 2.4 auth providers written in Python (PythonAuthnProvider / PythonAuthzProvider),
mixed with Apache's own, under each MPM. Failures must never grant access."""
from __future__ import annotations

import base64
import hashlib
import shutil
import time
from pathlib import Path
from typing import Callable, Iterator

import pytest
import requests
from requests.auth import HTTPBasicAuth, HTTPDigestAuth

from harness import Apache, MPMS, wait_log

APPS = Path(__file__).parent / "apps"
MODULES = ("authn_core", "authn_file", "authz_user", "auth_basic", "auth_digest")

BASIC = """
    AuthType Basic
    AuthName "basic realm"
"""

CONF = f"""
PythonPath "sys.path + ['@ROOT@/apps']"
PythonAuthnProvider pyauth authprov::check_password
PythonAuthnProvider pybool authprov::check_bool
PythonAuthnProvider pyraises authprov::raises
PythonAuthnProvider pybadtype authprov::bad_type
PythonAuthnProvider pybadint authprov::bad_int
PythonAuthnProvider pydigest authprov
PythonAuthnProvider pydigest_raises authprov authprov::realm_raises
PythonAuthnProvider pydigest_bad authprov authprov::realm_bad
PythonAuthnProvider pydigest_upper authprov authprov::realm_upper
PythonAuthnProvider pybasiconly basiconly
PythonAuthzProvider pygroup authprov::in_group
PythonAuthzProvider pyheader authprov::header_is
PythonAuthzProvider pyneutral authprov::neutral
PythonAuthzProvider pyzraises authprov::authz_raises
PythonAuthzProvider pyzbad authprov::authz_bad

# A Require line read before the alias section (mod_authz_core's leftover provider name must
# not be taken for the alias's).
<Location /before_alias>
    Require pyheader open
</Location>
<AuthzProviderAlias pygroup admins-only admins>
</AuthzProviderAlias>
<AuthnProviderAlias pyauth pyauth-alias>
</AuthnProviderAlias>

<Location />
    SetHandler modpy
    PythonHandler authprov::whoami
</Location>
"""

LOCATIONS = {
    "/basic": BASIC + "AuthBasicProvider pyauth\nRequire valid-user",
    "/bool": BASIC + "AuthBasicProvider pybool\nRequire valid-user",
    "/raises": BASIC + "AuthBasicProvider pyraises\nRequire valid-user",
    "/badtype": BASIC + "AuthBasicProvider pybadtype\nRequire valid-user",
    "/badint": BASIC + "AuthBasicProvider pybadint\nRequire valid-user",
    "/file_then_py": BASIC + "AuthBasicProvider file pyauth\nAuthUserFile @ROOT@/htpasswd\nRequire valid-user",
    "/py_then_file": BASIC + "AuthBasicProvider pyauth file\nAuthUserFile @ROOT@/htpasswd\nRequire valid-user",
    "/digest": 'AuthType Digest\nAuthName "digest realm"\nAuthDigestProvider pydigest\nRequire valid-user',
    "/digest_raises": 'AuthType Digest\nAuthName "dr"\nAuthDigestProvider pydigest_raises\nRequire valid-user',
    "/digest_bad": 'AuthType Digest\nAuthName "db"\nAuthDigestProvider pydigest_bad\nRequire valid-user',
    "/digest_upper": 'AuthType Digest\nAuthName "du"\nAuthDigestProvider pydigest_upper\nRequire valid-user',
    "/digest_nofunc": 'AuthType Digest\nAuthName "dn"\nAuthDigestProvider pybasiconly\nRequire valid-user',
    "/group": BASIC + "AuthBasicProvider pyauth\nRequire pygroup admins",
    "/group_forbidden": BASIC + "AuthBasicProvider pyauth\nAuthzSendForbiddenOnFailure On\nRequire pygroup admins",
    "/all": BASIC + "AuthBasicProvider pyauth\n<RequireAll>\n Require valid-user\n Require pygroup admins\n Require pyheader yes\n</RequireAll>",
    "/any": "<RequireAny>\n Require pyneutral\n Require pyheader open\n</RequireAny>",
    "/neutral": "Require pyneutral",
    "/any_raises_first": "<RequireAny>\n Require pyzraises some args\n Require all granted\n</RequireAny>",
    "/zraises": "Require pyzraises some args",
    "/zbad": "Require pyzbad",
    "/authz_alias": BASIC + "AuthBasicProvider pyauth\nRequire admins-only",
    "/authn_alias": BASIC + "AuthBasicProvider pyauth-alias\nRequire valid-user",
    "/not_staff": BASIC + "AuthBasicProvider pyauth\n<RequireAll>\n Require valid-user\n Require not pygroup staff\n</RequireAll>",
    "/none": BASIC + "AuthBasicProvider pyauth\n<RequireAll>\n Require valid-user\n <RequireNone>\n  Require pygroup staff\n </RequireNone>\n</RequireAll>",
}


def conf() -> str:
    parts = [CONF]
    for path, body in LOCATIONS.items():
        parts.append(f"<Location {path}>\n{body}\n</Location>")
    return "\n".join(parts)


def sha_htpasswd(user: str, pw: str) -> str:
    return f"{user}:{{SHA}}" + base64.b64encode(hashlib.sha1(pw.encode()).digest()).decode()


@pytest.fixture(scope="module", params=MPMS)
def server(request: pytest.FixtureRequest) -> Iterator[Apache]:
    a = Apache(conf(), mpm=request.param, loglevel="info", extra_modules=MODULES)
    shutil.copytree(APPS, a.root / "apps")
    (a.root / "htpasswd").write_text(sha_htpasswd("dave", "davepw") + "\n" + sha_htpasswd("alice", "filepw") + "\n")
    a.start()
    yield a
    a.stop()
    log = a.log_text()
    assert "Segmentation fault" not in log and "exit signal" not in log, log[-3000:]
    a.remove()




def get(a: Apache, path: str, auth=None, headers=None) -> requests.Response:
    return requests.get(a.url(path), auth=auth, headers=headers, timeout=10)


ALICE = HTTPBasicAuth("alice", "wonderland")
CAROL = HTTPBasicAuth("carol", "carolpw")


def test_basic_granted(server: Apache) -> None:
    r = get(server, "/basic", ALICE)
    assert (r.status_code, r.text) == (200, "user=alice type=Basic")


def test_basic_challenge_wrong_password_unknown_user(server: Apache) -> None:
    r = get(server, "/basic")
    assert r.status_code == 401 and r.headers["WWW-Authenticate"] == 'Basic realm="basic realm"'
    assert get(server, "/basic", HTTPBasicAuth("alice", "nope")).status_code == 401
    wait_log(server, "user alice: authentication failure for \"/basic\"")
    assert get(server, "/basic", HTTPBasicAuth("mallory", "x")).status_code == 401
    wait_log(server, "user mallory not found: /basic")


def test_provider_sees_request_headers(server: Apache) -> None:
    assert get(server, "/basic", ALICE, headers={"X-Block": "alice"}).status_code == 401
    assert get(server, "/basic", ALICE, headers={"X-Block": "bob"}).status_code == 200


def test_true_false_none_results(server: Apache) -> None:
    assert get(server, "/bool", ALICE).status_code == 200
    assert get(server, "/bool", HTTPBasicAuth("alice", "x")).status_code == 401
    assert get(server, "/bool", HTTPBasicAuth("nobody", "x")).status_code == 401
    wait_log(server, "user nobody not found: /bool")


def test_provider_exception_is_500_with_traceback(server: Apache) -> None:
    r = get(server, "/raises", ALICE)
    assert r.status_code == 500 and "user=" not in r.text
    log = wait_log(server, "KeyError: 'provider exploded for alice'")
    assert "mod_py: PythonAuthnProvider pyraises (authprov::raises) failed for /raises, access denied:" in log
    line = [l for l in log.splitlines() if "KeyError: 'provider exploded" in l][-1]
    assert "[client 127.0.0.1:" in line  # logged with the request


@pytest.mark.parametrize("path,what", [("/badtype", "'yes' (str)"), ("/badint", "42 (int)")])
def test_provider_wrong_return_type_is_500(server: Apache, path: str, what: str) -> None:
    r = get(server, path, ALICE)
    assert r.status_code == 500 and "user=" not in r.text
    wait_log(server, f"returned {what}, not AUTH_GRANTED")


def test_chained_with_apache_file_provider(server: Apache) -> None:
    # file first: dave is in the htpasswd file; alice is too, with another password.
    assert get(server, "/file_then_py", HTTPBasicAuth("dave", "davepw")).text == "user=dave type=Basic"
    assert get(server, "/file_then_py", HTTPBasicAuth("alice", "filepw")).status_code == 200
    # file says "wrong password" for alice/wonderland: the chain stops there.
    assert get(server, "/file_then_py", ALICE).status_code == 401
    # carol is not in the file: the Python provider decides.
    assert get(server, "/file_then_py", CAROL).text == "user=carol type=Basic"
    # Python first: unknown to Python (dave) falls through to the file.
    assert get(server, "/py_then_file", HTTPBasicAuth("dave", "davepw")).status_code == 200
    assert get(server, "/py_then_file", ALICE).status_code == 200
    assert get(server, "/py_then_file", HTTPBasicAuth("alice", "filepw")).status_code == 401
    assert get(server, "/py_then_file", HTTPBasicAuth("dave", "bad")).status_code == 401


def test_digest(server: Apache) -> None:
    with requests.Session() as s:
        r = s.get(server.url("/digest"), auth=HTTPDigestAuth("alice", "wonderland"), timeout=10)
        assert (r.status_code, r.text) == (200, "user=alice type=Digest")
    r = get(server, "/digest")
    assert r.status_code == 401 and r.headers["WWW-Authenticate"].startswith('Digest realm="digest realm"')
    assert get(server, "/digest", HTTPDigestAuth("alice", "wrong")).status_code == 401
    assert get(server, "/digest", HTTPDigestAuth("nobody", "x")).status_code == 401
    # Upper-case hex from Python works too (normalized).
    assert get(server, "/digest_upper", HTTPDigestAuth("carol", "carolpw")).status_code == 200


@pytest.mark.parametrize("path,needle", [
    ("/digest_raises", "RuntimeError: realm hash exploded"),
    ("/digest_bad", "returned 'not-a-hash' (str), not the 32 hex digits"),
    ("/digest_nofunc", "basiconly has no get_realm_hash(req, user, realm)"),
])
def test_digest_failures_are_500(server: Apache, path: str, needle: str) -> None:
    r = get(server, path, HTTPDigestAuth("alice", "wonderland"))
    assert r.status_code == 500 and "user=" not in r.text
    wait_log(server, needle)


def test_require_python_provider(server: Apache) -> None:
    assert get(server, "/group", ALICE).text == "user=alice type=Basic"
    # No credentials: the provider answers AUTHZ_DENIED_NO_USER, Apache asks for them.
    r = get(server, "/group")
    assert r.status_code == 401 and "WWW-Authenticate" in r.headers
    # Authenticated but not in the group: denied (401 to re-prompt, or 403 when asked).
    assert get(server, "/group", CAROL).status_code == 401
    assert get(server, "/group_forbidden", CAROL).status_code == 403
    wait_log(server, 'user carol: authorization failure for "/group"')


def test_require_all(server: Apache) -> None:
    assert get(server, "/all", ALICE, headers={"X-Flag": "yes"}).status_code == 200
    # pyheader denies without needing a user: Apache refuses before authentication.
    assert get(server, "/all", ALICE).status_code == 403
    assert get(server, "/all", CAROL, headers={"X-Flag": "yes"}).status_code == 401


def test_require_any_and_neutral(server: Apache) -> None:
    assert get(server, "/any", headers={"X-Flag": "open"}).status_code == 200
    assert get(server, "/any").status_code == 403
    # Neutral alone is not a grant.
    assert get(server, "/neutral").status_code == 403


def test_require_none(server: Apache) -> None:
    assert get(server, "/none", ALICE).status_code == 200
    assert get(server, "/none", CAROL).status_code in (401, 403)


@pytest.mark.parametrize("path,needle", [
    ("/zraises", "ValueError: authz exploded: some args"),
    ("/any_raises_first", "ValueError: authz exploded: some args"),
    ("/zbad", "authprov::authz_bad returned None (NoneType), not AUTHZ_GRANTED"),
])
def test_authz_failures_never_grant(server: Apache, path: str, needle: str) -> None:
    r = get(server, path)
    assert r.status_code == 500 and "user=" not in r.text
    log = wait_log(server, needle)
    assert f"failed for {path}, access denied:" in log


def test_authz_provider_alias(server: Apache) -> None:
    assert get(server, "/authz_alias", ALICE).status_code == 200
    assert get(server, "/authz_alias", CAROL).status_code == 401
    assert get(server, "/authz_alias", CAROL, headers={"X-Flag": "admins"}).status_code == 401
    assert get(server, "/before_alias", headers={"X-Flag": "open"}).status_code == 200


def test_require_not(server: Apache) -> None:
    assert get(server, "/not_staff", ALICE).status_code == 200
    assert get(server, "/not_staff", CAROL).status_code in (401, 403)


def test_authn_provider_alias_is_refused_fail_closed(server: Apache) -> None:
    r = get(server, "/authn_alias", ALICE)
    assert r.status_code == 500 and "user=" not in r.text
    wait_log(server, "no PythonAuthnProvider named 'pyauth-alias' is known in this process "
             "(AuthnProviderAlias over a mod_py provider is not supported)")


def test_providers_survive_graceful_restart(server: Apache) -> None:
    server.graceful()
    deadline = time.time() + 10
    while time.time() < deadline:
        if "resuming normal operations" in server.log_text().split("SIGUSR1")[-1]:
            break
        time.sleep(0.1)
    time.sleep(0.5)
    for _ in range(5):
        assert get(server, "/basic", ALICE).status_code == 200
        assert get(server, "/group", ALICE).status_code == 200
        assert get(server, "/group", CAROL).status_code == 401


# ---- configuration errors (configtest, in the parent: no Python) ----

@pytest.mark.parametrize("conf,needle", [
    ("PythonAuthnProvider file authprov", "PythonAuthnProvider: Apache already has an authn provider named 'file'"),
    ("PythonAuthzProvider valid-user authprov", "PythonAuthzProvider: Apache already has an authz provider named 'valid-user'"),
    ("<Location /x>\nPythonAuthnProvider p m\n</Location>", "PythonAuthnProvider not allowed in <Location> context"),
    ("PythonAuthnProvider p1 authprov\nPythonAuthnProvider p1 other", "PythonAuthnProvider: 'p1' is already registered (as authprov)"),
    ("PythonAuthnProvider p 9bad", "PythonAuthnProvider: '9bad': '9bad' is not a Python module name"),
    ("PythonAuthnProvider p m other", "the get_realm_hash function must be given as module::function"),
    ("PythonAuthnProvider 'a b' m", "is not a provider name"),
    ("PythonAuthnProvider p", "PythonAuthnProvider takes two or three arguments"),
    ("PythonAuthzProvider g m x::y", "PythonAuthzProvider: takes two arguments"),
    ("<Directory /tmp>\nPythonAuthzProvider g m\n</Directory>", "PythonAuthzProvider not allowed in <Directory> context"),
    ("<Location /x>\nAuthType Basic\nAuthBasicProvider later\n</Location>\nPythonAuthnProvider later m", "Unknown Authn provider: later"),
    ("<Location /x>\nRequire pyundefined\n</Location>", "Unknown Authz provider: pyundefined"),
])
def test_bad_provider_directives(apache: Callable[..., Apache], conf: str, needle: str) -> None:
    a = apache(conf, start=False, extra_modules=MODULES)
    r = a.configtest()
    assert r.returncode != 0 and needle in r.stderr + r.stdout, r.stderr


def test_provider_registered_in_parent_without_python(apache: Callable[..., Apache]) -> None:
    """configtest registers providers without starting Python (a module that cannot even be
    imported passes configtest; the failure shows up, fail-closed, when it is called)."""
    a = apache(
        "PythonAuthnProvider ghost no_such_module\n<Location />\nAuthType Basic\nAuthName g\n"
        "AuthBasicProvider ghost\nRequire valid-user\n</Location>",
        start=False, extra_modules=MODULES,
    )
    r = a.configtest()
    assert r.returncode == 0, r.stderr
    a.start()
    resp = requests.get(a.url("/"), auth=ALICE, timeout=10)
    assert resp.status_code == 500
    wait_log(a, "ModuleNotFoundError: No module named 'no_such_module'")
