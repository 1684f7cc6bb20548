"""A page showing what mod_py knows about the request: request_rec fields, the connection,
the server and the request headers (req.headers_in, an Apache table).

    <Location /info>
        SetHandler modpy
        PythonHandler request_info
    </Location>

Try: curl -H 'X-Demo: 1' 'http://127.0.0.1:8000/info/extra/path?a=1&b=2'
"""
import html
import os

from modpy import apache


def _rows(pairs):
    return "\n".join(
        f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(str(v))}</td></tr>" for k, v in pairs
    )


def handler(req):
    conn = req.connection
    server = req.server
    fields = [
        ("the_request", req.the_request),
        ("method", req.method),
        ("protocol", req.protocol),
        ("hostname", req.hostname),
        ("uri", req.uri),
        ("path_info", req.path_info),
        ("args", req.args),
        ("filename", req.filename),
        ("handler", req.handler),
        ("useragent_ip", req.useragent_ip),
        ("log_id", req.log_id),
        ("is_initial_req()", req.is_initial_req()),
        ("connection.client_ip", conn.client_ip),
        ("connection.local_ip", conn.local_ip),
        ("connection.keepalives", conn.keepalives),
        ("server.server_hostname", server.server_hostname),
        ("server.port", server.port),
        ("mpm_query('is_threaded')", apache.mpm_query("is_threaded")),
        ("process id", os.getpid()),
    ]
    body = f"""<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>mod_py: request info</title></head>
<body>
<h1>Request</h1>
<table>
{_rows(fields)}
</table>
<h1>Headers (req.headers_in)</h1>
<table>
{_rows(req.headers_in.items())}
</table>
</body></html>
"""
    req.content_type = "text/html; charset=utf-8"
    req.write(body)
    return apache.OK
