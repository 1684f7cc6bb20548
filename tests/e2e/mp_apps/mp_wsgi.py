"""WSGI applications written for mod_python 3.5's mod_python.wsgi handler."""
import json
import sys


def application(env, start_response):
    body = env["wsgi.input"].read()
    out = {k: env.get(k) for k in ("SCRIPT_NAME", "PATH_INFO", "QUERY_STRING", "wsgi.url_scheme")}
    out.update(input=type(env["wsgi.input"]).__name__, errors_is_stderr=env["wsgi.errors"] is sys.stderr,
               body=body.decode(), version=list(env["wsgi.version"]))
    env["wsgi.errors"].write("written_from_mp_wsgi\n")
    start_response("200 OK", [("Content-Type", "application/json")])
    return [json.dumps(out)]  # a str, as 3.5 accepted


def teapot(env, start_response):
    write = start_response("418 I'm a teapot", [("Content-Type", "text/plain; charset=latin-1"), ("X-Pot", "1")])
    write("caf\u00e9 ")
    return [b"short", " and stout"]
