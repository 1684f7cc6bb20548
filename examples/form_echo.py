"""A form that posts to itself: GET shows the form, POST reads the request body with
req.read() and echoes the fields back (application/x-www-form-urlencoded).

    <Location /form>
        SetHandler modpy
        PythonHandler form_echo
    </Location>

Try: curl -d 'name=Ada&lang=Python' http://127.0.0.1:8000/form
"""
import html
from urllib.parse import parse_qsl

from modpy import apache

MAX_BODY = 1 << 20  # refuse bodies over 1 MiB

FORM = """<form method="post">
<p><label>Name <input name="name"></label></p>
<p><label>Language <input name="lang" value="Python"></label></p>
<p><button>Send</button></p>
</form>"""


def handler(req):
    if req.method not in ("GET", "HEAD", "POST"):
        req.allow_methods(["GET", "POST"])
        return apache.HTTP_METHOD_NOT_ALLOWED

    echo = ""
    if req.method == "POST":
        length = int(req.headers_in.get("Content-Length", "0") or 0)
        if length > MAX_BODY:
            return apache.HTTP_REQUEST_ENTITY_TOO_LARGE
        body = req.read()
        ctype = req.headers_in.get("Content-Type", "")
        if ctype.startswith("application/x-www-form-urlencoded"):
            fields = parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True)
            rows = "\n".join(
                f"<li><b>{html.escape(k)}</b> = {html.escape(v)}</li>" for k, v in fields
            )
            echo = f"<h2>You sent {len(fields)} field(s)</h2>\n<ul>\n{rows}\n</ul>"
        else:
            echo = f"<h2>You sent {len(body)} byte(s) of {html.escape(ctype or 'unknown type')}</h2>"

    req.content_type = "text/html; charset=utf-8"
    req.write(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>mod_py: form echo</title>"
        f"</head><body>\n<h1>Form echo</h1>\n{FORM}\n{echo}\n</body></html>\n"
    )
    return apache.OK
