"""/wsgi: a WSGI application in a daemon process group (WSGIDaemonProcess examples): a page
that says which process and Python served it, and echoes a form posted to it."""
import html
import os
import sys
from urllib.parse import parse_qsl


def application(environ, start_response):
    fields = []
    if environ["REQUEST_METHOD"] == "POST":
        size = int(environ.get("CONTENT_LENGTH") or 0)
        fields = parse_qsl(environ["wsgi.input"].read(size).decode("utf-8", "replace"))
    rows = "".join(f"<li>{html.escape(k)} = {html.escape(v)}</li>" for k, v in fields)
    body = (
        "<html><body><h1>WSGI in a daemon process</h1>"
        f"<p>process group <b>{html.escape(environ['mod_wsgi.process_group'])}</b>, "
        f"pid {os.getpid()}, uid {os.getuid()}, Python {sys.version.split()[0]}</p>"
        f"<form method='post'><input name='name'><button>send</button></form><ul>{rows}</ul>"
        "</body></html>"
    ).encode()
    start_response("200 OK", [("Content-Type", "text/html; charset=utf-8"),
                              ("Content-Length", str(len(body)))])
    return [body]
