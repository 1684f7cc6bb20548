"""A small but real Flask application for mod_py's end-to-end tests (tests/e2e/test_wsgi_frameworks.py).

Served by WSGIScriptAlias (flask_app.wsgi), by `PythonHandler modpy.wsgi`, and by mod_wsgi 4.9
for comparison; it must behave the same under all of them.
"""
from __future__ import annotations

import hashlib
import io
import os
import sys
import time

from flask import (Flask, Response, abort, jsonify, redirect, request, send_file, session,
                   stream_with_context, url_for)

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(HERE, "data.bin")

app = Flask(__name__)
app.secret_key = "modpy-e2e-flask-not-a-secret"
app.config["MAX_CONTENT_LENGTH"] = 64 << 20


@app.get("/")
def index() -> str:
    return "Hello from Flask\n"


@app.get("/info")
def info() -> Response:
    import django
    import flask
    env = request.environ
    return jsonify(
        prefix=sys.prefix, base_prefix=sys.base_prefix, exec_prefix=sys.exec_prefix,
        version=list(sys.version_info[:3]), os_file=os.__file__, flask_file=flask.__file__,
        django_file=django.__file__, path=sys.path,
        file_wrapper=getattr(env.get("wsgi.file_wrapper"), "__name__", None),
        multithread=env["wsgi.multithread"], multiprocess=env["wsgi.multiprocess"],
    )


@app.route("/form", methods=["GET", "POST"])
def form() -> Response | str:
    if request.method == "GET":
        return ('<form method="post" action="' + url_for("form") + '">'
                '<input name="name"><input name="tags"><input name="tags"></form>\n')
    return jsonify(form={k: request.form.getlist(k) for k in request.form},
                   content_type=request.mimetype)


@app.post("/upload")
def upload() -> Response:
    files = []
    for field, f in request.files.items(multi=True):
        h = hashlib.sha256()
        size = 0
        for chunk in iter(lambda: f.stream.read(1 << 16), b""):
            h.update(chunk)
            size += len(chunk)
        files.append({"field": field, "filename": f.filename, "content_type": f.mimetype,
                      "size": size, "sha256": h.hexdigest()})
    return jsonify(files=files, form=request.form.to_dict(flat=False))


@app.get("/cookies/set")
def set_cookie() -> Response:
    resp = redirect(url_for("show_cookies"))
    resp.set_cookie("flavour", request.args.get("flavour", "plain"), httponly=True, samesite="Lax")
    session["visits"] = session.get("visits", 0) + 1
    return resp


@app.get("/cookies")
def show_cookies() -> Response:
    session["visits"] = session.get("visits", 0) + 1
    return jsonify(cookies={k: v for k, v in request.cookies.items() if k != "session"},
                   visits=session["visits"])


@app.get("/redirect")
def go_home() -> Response:
    return redirect(url_for("index"))


@app.get("/urls")
def urls() -> Response:
    return jsonify(
        index=url_for("index"), file=url_for("download", attach="1"),
        path_url=url_for("echo_path", name="caf\u00e9 x"),
        external=url_for("index", _external=True), script_root=request.script_root,
        path=request.path, url=request.url,
    )


@app.get("/stream")
def stream() -> Response:
    n = request.args.get("n", 100, type=int)
    delay = request.args.get("delay", 0.0, type=float)

    @stream_with_context
    def generate():
        for i in range(n):
            if delay:
                time.sleep(delay)
            # request is still usable inside the generator thanks to stream_with_context
            yield f"line {i:04d} {request.args.get('tag', '')}\n"

    return Response(generate(), mimetype="text/plain")


@app.get("/file")
def download() -> Response:
    return send_file(DATA, mimetype="application/octet-stream",
                     as_attachment=request.args.get("attach") == "1", download_name="data.bin")


@app.get("/file-obj")
def download_obj() -> Response:
    # a file object without a file descriptor: wsgi.file_wrapper must fall back to read()
    with open(DATA, "rb") as f:
        data = f.read()
    return send_file(io.BytesIO(data), mimetype="application/octet-stream",
                     download_name="copy.bin")


@app.get("/boom")
def boom() -> str:
    raise ZeroDivisionError("flask view exploded on purpose")


@app.get("/gone/<int:n>")
def gone(n: int) -> str:
    abort(404, description=f"item {n} is gone")


@app.get("/echo")
def echo_args() -> Response:
    body = "".join(f"{k}={v}\n" for k, vs in request.args.lists() for v in vs)
    return Response(body, mimetype="text/plain")


@app.get("/path/<name>")
def echo_path(name: str) -> Response:
    return Response(name, mimetype="text/plain")
