"""The systems bench/ compares and the Apache config each one runs under.

Every system is its own Apache instance: own ServerRoot (RUN/<system>/), port, pid file and
error log; the same MPM (event by default: 2 processes x 8 threads = 16 workers), LogLevel
warn, no access log (mod_log_config is not loaded), unlimited keep-alive requests, children
as www-data when started as root. /etc/apache2 and the system Apache are never used.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field

MODS = "/usr/lib/apache2/modules"

# The scenarios, in the order they run (expected bodies: bench.EXPECT; post_* are POSTs).
SCENARIOS: tuple[str, ...] = ("hello", "psp_hello", "get_64k", "post_echo_1m", "file_1m", "file_1m_upper")


@dataclass(frozen=True)
class System:
    name: str
    what: str  # one line for the README / table header
    paths: dict[str, str]  # scenario -> URL path
    conf: str  # the system's part of httpd.conf ({run}, {name}, {mods}, {modpy_so}, {wsgi_so})
    needs: tuple[tuple[str, str], ...] = field(default=())  # (file, Debian package providing it)


PY_LOCATIONS = """
<Location /hello>
    SetHandler {handler}
    PythonHandler mp_app::hello
</Location>
<Location /64k>
    SetHandler {handler}
    PythonHandler mp_app::big
</Location>
<Location /echo>
    SetHandler {handler}
    PythonHandler mp_app::echo
</Location>
PythonOutputFilter mp_app::upper UPPER
<Location /f/>
    SetOutputFilter UPPER
</Location>
"""

# A mod_python.publisher page and a PSP page, served the same way by mod_python and mod_py.
SITE_CONF = """PythonInterpreter main_interpreter
<Directory {run}/apps/site>
    Require all granted
    SetHandler mod_python
</Directory>
<Files pub.py>
    PythonHandler mod_python.publisher
</Files>
<Files hello.psp>
    PythonHandler mod_python.psp
</Files>
LoadModule alias_module {mods}/mod_alias.so
Alias /site {run}/apps/site
"""

SYSTEMS: dict[str, System] = {
    s.name: s
    for s in [
        System(
            "apache_c",
            "C handlers (apps/mod_bench.c, built with apxs at run time): no Python, no file I/O",
            {"hello": "/hello", "get_64k": "/64k", "post_echo_1m": "/echo", "file_1m_upper": "/c/1m.txt"},
            """
LoadModule bench_module {run}/{name}/mod_bench.so
LoadModule case_filter_module {mods}/mod_case_filter.so
<Location /c/>
    SetOutputFilter CaseFilter
</Location>
<Location /hello>
    SetHandler bench_hello
</Location>
<Location /64k>
    SetHandler bench_64k
</Location>
<Location /echo>
    SetHandler bench_echo
</Location>
""",
            (("/usr/bin/apxs", "apache2-dev"),),
        ),
        System(
            "mod_python",
            "mod_python 3.5 running apps/mp_app.py, PythonInterpreter main_interpreter",
            {"hello": "/hello", "get_64k": "/64k", "post_echo_1m": "/echo", "file_1m_upper": "/f/1m.txt"},
            """
LoadModule python_module {mods}/mod_python.so
PythonPath "sys.path + ['{run}/apps']"
PythonInterpreter main_interpreter
"""
            + PY_LOCATIONS.replace("{handler}", "mod_python"),
            ((f"{MODS}/mod_python.so", "libapache2-mod-python"),),
        ),
        System(
            "mod_python_pub",
            "mod_python 3.5: mod_python.publisher (apps/site/pub.py/hello) and mod_python.psp (apps/site/hello.psp)",
            {"hello": "/site/pub.py/hello", "psp_hello": "/site/hello.psp"},
            """
LoadModule python_module {mods}/mod_python.so
"""
            + SITE_CONF,
            ((f"{MODS}/mod_python.so", "libapache2-mod-python"),),
        ),
        System(
            "modpy_pub",
            "mod_py running the same publisher page and PSP page through its mod_python package",
            {"hello": "/site/pub.py/hello", "psp_hello": "/site/hello.psp"},
            """
LoadModule py_module {modpy_so}
"""
            + SITE_CONF,
        ),
        System(
            "modpy_handler",
            "mod_py (MODPY_SO) running the same apps/mp_app.py",
            {"hello": "/hello", "get_64k": "/64k", "post_echo_1m": "/echo", "file_1m_upper": "/f/1m.txt"},
            """
LoadModule py_module {modpy_so}
PythonPath "sys.path + ['{run}/apps']"
PythonInterpreter main_interpreter
"""
            + PY_LOCATIONS.replace("{handler}", "modpy"),
        ),
        System(
            "modpy_wsgi",
            "mod_py's embedded WSGI mode, apps/wsgi_app.py, WSGIApplicationGroup %{GLOBAL}",
            {"hello": "/hello", "get_64k": "/64k", "post_echo_1m": "/echo"},
            """
LoadModule py_module {modpy_so}
WSGIScriptAlias / {run}/apps/wsgi_app.py
WSGIApplicationGroup %{{GLOBAL}}
""",
        ),
        System(
            "modpy_daemon",
            "mod_py's daemon mode: WSGIDaemonProcess processes=2 threads=8, apps/wsgi_app.py",
            {"hello": "/hello", "get_64k": "/64k", "post_echo_1m": "/echo"},
            """
LoadModule py_module {modpy_so}
WSGIDaemonProcess bench processes=2 threads=8
WSGIScriptAlias / {run}/apps/wsgi_app.py process-group=bench application-group=%{{GLOBAL}}
""",
        ),
        System(
            "modpy_template",
            "mod_py's daemon mode on demand: WSGIDaemonTemplate processes=2 threads=8, instance per %{SERVER}",
            {"hello": "/hello", "get_64k": "/64k", "post_echo_1m": "/echo"},
            """
LoadModule py_module {modpy_so}
WSGIDaemonTemplate bench processes=2 threads=8 display-name=modpy:bench:%{{SERVER}}
WSGIScriptAlias / {run}/apps/wsgi_app.py process-group=%{{TEMPLATE:bench}} application-group=%{{GLOBAL}}
""",
        ),
        System(
            "modpy_brigade",
            "mod_py: file_1m_upper through mp_app::upper_bb, the same filter written with the brigade API",
            {"file_1m_upper": "/fb/1m.txt"},
            """
LoadModule py_module {modpy_so}
PythonPath "sys.path + ['{run}/apps']"
PythonOutputFilter mp_app::upper_bb UPPERBB
<Location /fb/>
    SetOutputFilter UPPERBB
</Location>
""",
        ),
        System(
            "static",
            "Apache core serving files with the same bytes (reference; no POST scenario)",
            {"hello": "/hello.txt", "get_64k": "/64k.bin", "file_1m": "/1m.txt"},
            "",
        ),
        System(
            "wsgi_embedded",
            "mod_wsgi (WSGI_SO) embedded mode, apps/wsgi_app.py, WSGIApplicationGroup %{GLOBAL}",
            {"hello": "/hello", "get_64k": "/64k", "post_echo_1m": "/echo"},
            """
LoadModule wsgi_module {wsgi_so}
WSGIRestrictEmbedded Off
WSGIScriptAlias / {run}/apps/wsgi_app.py
WSGIApplicationGroup %{{GLOBAL}}
""",
            ((f"{MODS}/mod_wsgi.so", "libapache2-mod-wsgi-py3"),),
        ),
        System(
            "wsgi_daemon",
            "mod_wsgi (WSGI_SO) daemon mode: WSGIDaemonProcess processes=2 threads=8, apps/wsgi_app.py",
            {"hello": "/hello", "get_64k": "/64k", "post_echo_1m": "/echo"},
            """
LoadModule wsgi_module {wsgi_so}
WSGIDaemonProcess bench processes=2 threads=8
WSGIScriptAlias / {run}/apps/wsgi_app.py process-group=bench application-group=%{{GLOBAL}}
""",
            ((f"{MODS}/mod_wsgi.so", "libapache2-mod-wsgi-py3"),),
        ),
    ]
}

COMMON = """\
# generated by bench/lib/systems.py -- system: {name}
ServerRoot "{run}/{name}"
DefaultRuntimeDir "{run}/{name}"
PidFile "{run}/{name}/httpd.pid"
ErrorLog "{run}/{name}/error.log"
LogLevel warn
ServerName 127.0.0.1
Listen 127.0.0.1:{port}
{user}
LoadModule mpm_{mpm}_module {mods}/mod_mpm_{mpm}.so
LoadModule authz_core_module {mods}/mod_authz_core.so
LoadModule mime_module {mods}/mod_mime.so
{mpm_conf}
MaxConnectionsPerChild 0
KeepAlive On
MaxKeepAliveRequests 0
KeepAliveTimeout 5
Timeout 60
LimitRequestBody 0
# no CustomLog and no mod_log_config: access log off

TypesConfig /dev/null
AddType text/plain .txt
AddType application/octet-stream .bin
DocumentRoot "{run}/htdocs"
<Directory />
    Options None
    AllowOverride None
    Require all granted
</Directory>
"""

# 16 workers under every MPM: 2 processes x 8 threads (event, worker) or 16 processes (prefork).
MPM_CONF = {
    "threaded": """\
StartServers 2
ServerLimit 2
ThreadLimit 8
ThreadsPerChild 8
MinSpareThreads 8
MaxSpareThreads 16
MaxRequestWorkers 16""",
    "prefork": """\
StartServers 16
ServerLimit 16
MinSpareServers 16
MaxSpareServers 16
MaxRequestWorkers 16""",
}


def httpd_conf(
    system: System, run: str, port: int, mpm: str, user: str | None, modpy_so: str, wsgi_so: str
) -> str:
    """httpd.conf text for one system; user=None leaves User/Group alone (not started as root)."""
    group = "nogroup" if user == "nobody" else user
    mpm_conf = MPM_CONF["prefork" if mpm == "prefork" else "threaded"]
    return (COMMON + system.conf).format(
        name=system.name,
        run=run,
        port=port,
        mpm=mpm,
        mpm_conf=mpm_conf,
        mods=MODS,
        user=f"User {user}\nGroup {group}\n" if user else "",
        modpy_so=os.path.abspath(modpy_so),
        wsgi_so=wsgi_so,
    )
