"""Daemon groups on demand (WSGIDaemonTemplate, %{TEMPLATE:NAME}, WSGIDaemonDefault): real
Apache, real system accounts (created for the test, uid >= 1000), Basic authentication."""
from __future__ import annotations

import json
import pwd
import subprocess
import threading
import time
from typing import Callable, Iterator

import pytest

from harness import Apache, wait_log

APP = '''
import os, json
def application(environ, start_response):
    body = json.dumps({"pid": os.getpid(), "uid": os.getuid(), "cwd": os.getcwd(),
                       "home": os.environ.get("HOME"), "group": environ["mod_wsgi.process_group"]}).encode()
    start_response("200 OK", [("Content-Type", "application/json")])
    return [body]
'''

USERS = ["modpyt1", "modpyt2", "modpyt3"]
PASSWORD = "pw"
AUTH_MODULES = ("auth_basic", "authn_core", "authn_file", "authz_user")


@pytest.fixture(scope="module")
def accounts() -> Iterator[list[str]]:
    """Three real accounts with homes; removed afterwards."""
    for u in USERS:
        if subprocess.run(["id", u], capture_output=True).returncode != 0:
            subprocess.run(["useradd", "--create-home", "--shell", "/usr/sbin/nologin", u], check=True)
    yield USERS
    for u in USERS:
        subprocess.run(["userdel", "--remove", u], capture_output=True)


def basic(user: str) -> dict[str, str]:
    import base64
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{PASSWORD}".encode()).decode()}


def get(a: Apache, path: str, host: str = "127.0.0.1", user: str | None = None) -> tuple[int, dict]:
    headers = {"Host": host, **(basic(user) if user else {})}
    status, _, body = a.get(path, headers=headers, timeout=30)
    return status, (json.loads(body) if status == 200 else {"body": body[:200]})


def instance_pids(name: str) -> list[int]:
    out = subprocess.run(["pgrep", "-f", "--", f"-m modpy.daemon modpy:{name}$"], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


def htpasswd(a: Apache, users: list[str]) -> str:
    path = a.root / "htpasswd"
    for i, u in enumerate(users):
        subprocess.run(["htpasswd", "-b" + ("c" if i == 0 else ""), str(path), u, PASSWORD], check=True, capture_output=True)
    path.chmod(0o644)
    return str(path)


def test_one_instance_per_virtual_host(apache: Callable[..., Apache]) -> None:
    a = apache("""
        WSGIDaemonTemplate vh processes=1 threads=2 display-name=modpy:vh:%{SERVER}
        <VirtualHost *>
            ServerName a.test
            WSGIScriptAlias /app @ROOT@/app.wsgi process-group=%{TEMPLATE:vh}
        </VirtualHost>
        <VirtualHost *>
            ServerName b.test
            WSGIScriptAlias /app @ROOT@/app.wsgi process-group=%{TEMPLATE:vh}
        </VirtualHost>
        """, files={"app.wsgi": APP})
    time.sleep(0.5)
    assert instance_pids("vh:a.test") == [] and instance_pids("vh:b.test") == []  # none before use
    sa, ea = get(a, "/app", "a.test")
    sb, eb = get(a, "/app", "b.test")
    assert (sa, sb) == (200, 200)
    assert ea["group"] == "vh:a.test" and eb["group"] == "vh:b.test" and ea["pid"] != eb["pid"]
    assert get(a, "/app", "a.test")[1]["pid"] == ea["pid"]  # the same instance again
    wait_log(a, "daemon instance 'vh:a.test' of template 'vh' starting")


def test_per_user_instances_run_as_the_user(apache: Callable[..., Apache], accounts: list[str]) -> None:
    a = apache("""
        WSGIDaemonTemplate peruser user=%{USER} home=/home/%{USER} threads=2
        WSGIScriptAlias /app @ROOT@/app.wsgi process-group=%{TEMPLATE:peruser}
        <Location /app>
            AuthType Basic
            AuthName test
            AuthBasicProvider file
            AuthUserFile @ROOT@/htpasswd
            Require valid-user
        </Location>
        """, files={"app.wsgi": APP}, start=False, extra_modules=AUTH_MODULES)
    htpasswd(a, accounts + ["root", "www-data", "nosuchaccount"])
    a.start()
    seen = {}
    for u in accounts:
        status, e = get(a, "/app", user=u)
        assert status == 200, (u, e, a.log_text()[-2000:])
        pw = pwd.getpwnam(u)
        assert (e["uid"], e["cwd"], e["group"]) == (pw.pw_uid, pw.pw_dir, f"peruser:{u}")
        seen[u] = e["pid"]
    assert len(set(seen.values())) == 3
    # Refused: root, Apache's own (system) account, a user without an account.
    for u, why in (("root", "uid 0"), ("www-data", f"uid {pwd.getpwnam('www-data').pw_uid}"),
                   ("nosuchaccount", "has no account")):
        status, _ = get(a, "/app", user=u)
        assert status == 403, u
        wait_log(a, why)
        assert instance_pids(f"peruser:{u}") == []
    assert get(a, "/app")[0] == 401  # no user: authentication first


def test_users_allow_list_and_max_instances_eviction(apache: Callable[..., Apache], accounts: list[str]) -> None:
    a = apache("""
        WSGIDaemonTemplate peruser user=%{USER} threads=2 max-instances=2 users=modpyt1,modpyt2,modpyt3
        WSGIDaemonTemplate two user=%{USER} threads=2 users=modpyt1
        WSGIScriptAlias /app @ROOT@/app.wsgi process-group=%{TEMPLATE:peruser}
        WSGIScriptAlias /two @ROOT@/app.wsgi process-group=%{TEMPLATE:two}
        <LocationMatch ^/(app|two)>
            AuthType Basic
            AuthName test
            AuthBasicProvider file
            AuthUserFile @ROOT@/htpasswd
            Require valid-user
        </LocationMatch>
        """, files={"app.wsgi": APP}, start=False, extra_modules=AUTH_MODULES)
    htpasswd(a, accounts)
    a.start()
    # users=: modpyt2 is not on the list of template 'two'.
    assert get(a, "/two", user="modpyt2")[0] == 403
    wait_log(a, "template 'two': user 'modpyt2' is not in users=")
    assert get(a, "/two", user="modpyt1")[0] == 200
    # max-instances=2: the third user's instance evicts the least recently used idle one.
    assert get(a, "/app", user="modpyt1")[0] == 200
    time.sleep(0.3)
    assert get(a, "/app", user="modpyt2")[0] == 200
    time.sleep(1.5)  # both idle now; modpyt1's is the least recently used
    assert get(a, "/app", user="modpyt3")[0] == 200
    wait_log(a, "daemon instance 'peruser:modpyt1' stopping: evicted: max-instances reached")
    assert get(a, "/app", user="modpyt2")[0] == 200


def test_idle_instance_stops_and_comes_back(apache: Callable[..., Apache]) -> None:
    a = apache("""
        WSGIDaemonTemplate vh processes=1 threads=2 inactivity-timeout=1 display-name=modpy:vh:%{SERVER}
        WSGIScriptAlias /app @ROOT@/app.wsgi process-group=%{TEMPLATE:vh}
        """, files={"app.wsgi": APP})
    first = get(a, "/app")[1]["pid"]
    wait_log(a, "daemon instance 'vh:127.0.0.1' removed", timeout=8)
    assert instance_pids("vh:127.0.0.1") == []
    status, e = get(a, "/app")
    assert status == 200 and e["pid"] != first


def test_concurrent_first_requests_start_one_instance(apache: Callable[..., Apache]) -> None:
    a = apache("""
        WSGIDaemonTemplate vh processes=1 threads=4 display-name=modpy:vh:%{SERVER}
        WSGIScriptAlias /app @ROOT@/app.wsgi process-group=%{TEMPLATE:vh}
        """, files={"app.wsgi": APP}, threads=25, processes=2)
    results: list[int] = []
    lock = threading.Lock()
    def one() -> None:
        status, e = get(a, "/app")
        with lock:
            results.append(e.get("pid", -status))
    threads = [threading.Thread(target=one) for _ in range(50)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 50 and all(p > 0 for p in results), results
    assert len(set(results)) == 1
    assert a.log_text().count("of template 'vh' starting") == 1


def test_daemon_default_runs_scripts_in_the_vhost_group(apache: Callable[..., Apache]) -> None:
    a = apache("""
        <VirtualHost *>
            ServerName a.test
            WSGIDaemonDefault On
            WSGIScriptAlias /app @ROOT@/app.wsgi
        </VirtualHost>
        <VirtualHost *>
            ServerName b.test
            WSGIScriptAlias /app @ROOT@/app.wsgi
        </VirtualHost>
        """, files={"app.wsgi": APP})
    status, e = get(a, "/app", "a.test")
    assert status == 200 and e["group"] == "default:a.test" and e["pid"] not in a.children()
    status, e = get(a, "/app", "b.test")  # no WSGIDaemonDefault there: embedded
    assert status == 200 and e["group"] == "" and e["pid"] in a.children()


def test_graceful_restart_with_live_instances(apache: Callable[..., Apache]) -> None:
    a = apache("""
        WSGIDaemonTemplate vh processes=1 threads=4 display-name=modpy:vh:%{SERVER}
        WSGIScriptAlias /app @ROOT@/app.wsgi process-group=%{TEMPLATE:vh}
        """, files={"app.wsgi": APP})
    assert get(a, "/app")[0] == 200
    failures: list[str] = []
    ok = [0]
    stop = threading.Event()
    def load() -> None:
        while not stop.is_set():
            try:
                status, _ = get(a, "/app")
                if status == 200:
                    ok[0] += 1
                else:
                    failures.append(str(status))
            except Exception as e:  # noqa: BLE001
                failures.append(repr(e))
    threads = [threading.Thread(target=load) for _ in range(4)]
    for t in threads:
        t.start()
    for _ in range(5):
        time.sleep(0.6)
        a.graceful()
    time.sleep(1)
    stop.set()
    for t in threads:
        t.join()
    errors = [line for line in a.log_text().splitlines() if "[py:error]" in line]
    assert failures == [] and ok[0] > 50, (failures[:5], errors[-5:])


SLEEPY = '''
import os, json, time
def application(environ, start_response):
    time.sleep(float(environ.get("QUERY_STRING") or 0))
    start_response("200 OK", [("Content-Type", "application/json")])
    return [json.dumps({"pid": os.getpid(), "group": environ["mod_wsgi.process_group"]}).encode()]
'''


def test_busy_instance_is_not_evicted(apache: Callable[..., Apache]) -> None:
    """max-instances=1, instances keyed on %{ENV:SITE} (SetEnvIf), running as Apache's user:
    while one instance serves a request, another instance cannot take its place (503)."""
    a = apache("""
        WSGIDaemonTemplate site processes=1 threads=2 max-instances=1 display-name=modpy:site:%{ENV:SITE}
        SetEnvIf Request_URI "^/s/([a-z]+)" SITE=$1
        WSGIScriptAliasMatch ^/s/[a-z]+ @ROOT@/app.wsgi process-group=%{TEMPLATE:site}
        """, files={"app.wsgi": SLEEPY}, extra_modules=("setenvif",))
    assert get(a, "/s/one")[1]["group"] == "site:one"
    slow: list[int] = []
    t = threading.Thread(target=lambda: slow.append(a.get("/s/one?3", timeout=30)[0]))
    t.start()
    time.sleep(1.5)  # busy for more than a second: its activity file is fresh
    assert a.get("/s/two", timeout=30)[0] == 503
    wait_log(a, "max-instances=1 reached and none is idle")
    t.join()
    assert slow == [200]
    time.sleep(1.5)  # now idle: it gives way
    assert get(a, "/s/two")[1]["group"] == "site:two"
    wait_log(a, "daemon instance 'site:one' stopping: evicted: max-instances reached")
