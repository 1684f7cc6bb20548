"""Handlers for every request phase, exercised by test_phases.py.

Every handler that takes part in /ph/ requests appends "name:req.phase;" to req.notes["trail"],
so the content handler can show which handlers ran, in which phase and in which order (notes
live for the whole request, across phases).
"""
import json
import os

from modpy import apache


def record(req, name):
    req.notes["trail"] = req.notes.get("trail", "") + "%s:%s;" % (name, req.phase)


def ours(req):
    return (req.uri or "").startswith("/ph/")


# ---- server level (run for every request of the server) ----

def init_server(req):
    if ours(req):
        record(req, "init_server")
    return apache.OK


def postread(req):
    if not ours(req):
        return apache.DECLINED
    record(req, "postread")
    if req.headers_in.get("X-Postread") == "forbid":
        return apache.HTTP_FORBIDDEN
    if req.headers_in.get("X-Postread") == "raise":
        raise RuntimeError("boom in postread")
    return apache.OK


def trans(req):
    if not ours(req):
        return apache.DECLINED
    record(req, "trans")
    if req.headers_in.get("X-Trans") == "raise":
        raise RuntimeError("boom in trans")
    prefix = "/ph/virtual/"
    if req.uri.startswith(prefix):
        # Map the URI to a file ourselves; Apache's Alias/DocumentRoot mapping is skipped.
        req.filename = os.path.join(req.get_options()["realdir"], req.uri[len(prefix):])
        return apache.OK
    return apache.DECLINED


def vhost_trans(req):
    if req.uri == "/ph/vhostfile":
        req.filename = os.path.join(req.get_options()["realdir"], "file.txt")
        return apache.OK
    return apache.DECLINED


# ---- directory level ----

def init_dir(req):
    record(req, "init_dir")
    return apache.OK


def headerparser(req):
    record(req, "headerparser")
    return apache.OK


def access(req):
    record(req, "access")
    if req.headers_in.get("X-Deny"):
        return apache.HTTP_FORBIDDEN
    return apache.OK


def typehandler(req):
    record(req, "type")
    return apache.DECLINED


def fixup(req):
    record(req, "fixup")
    req.headers_out["X-Fixup"] = "ran"
    return apache.OK


def content(req):
    record(req, "content")
    body = json.dumps({
        "trail": req.notes.get("trail", ""),
        "user": req.user,
        "phase": req.phase,
        "ctype": req.content_type,
        "filename": req.filename,
        "config": req.get_config(),
    }).encode()
    req.content_type = "application/json"
    req.write(body)
    return apache.OK


def loghandler(req):
    apache.log_error("modpy-log-handler uri=%s status=%d trail=%s phase=%s"
                     % (req.uri, req.status, req.notes.get("trail"), req.phase), apache.APLOG_NOTICE)
    return apache.OK


def cleanuphandler(req):
    apache.log_error("modpy-cleanup-handler uri=%s phase=%s" % (req.uri, req.phase),
                     apache.APLOG_NOTICE)
    return apache.OK


def content_with_cleanup(req):
    def done(data):
        apache.log_error("modpy-register-cleanup " + data, apache.APLOG_NOTICE)
    req.register_cleanup(done, req.uri)
    return content(req)


# ---- several handlers in one phase ----

def rec_a(req):
    record(req, "a")
    return apache.OK


def rec_b(req):
    record(req, "b")
    apache.log_error("rec_b ran for " + req.uri, apache.APLOG_NOTICE)
    return apache.OK


def rec_declined(req):
    record(req, "declined")
    return apache.DECLINED


def forbidden(req):
    record(req, "forbidden")
    return apache.HTTP_FORBIDDEN


def type_declined(req):
    record(req, "type_declined")
    return apache.DECLINED


def type_ok(req):
    record(req, "type_ok")
    req.content_type = "application/x-first"
    return apache.OK


def type_never(req):
    req.content_type = "application/x-never"
    return apache.OK


def write_a(req):
    req.write(b"a")
    return apache.OK


def write_b(req):
    req.write(b"b")
    return apache.OK


def write_declined(req):
    return apache.DECLINED


def set_type(req):
    req.content_type = "application/x-modpy-type"
    return apache.OK


def ext_fixup(req):
    req.headers_out["X-Ext-Fixup"] = os.path.basename(req.filename)
    return apache.OK


# ---- authentication / authorization handlers ----

USERS = {"alice": "secret", "bob": "secret"}


def authen(req):
    record(req, "authen")
    pw = req.get_basic_auth_pw()  # also sets req.user
    if req.user in USERS and USERS[req.user] == pw:
        return apache.OK
    return apache.HTTP_UNAUTHORIZED


def authen_token(req):
    """Authentication from a header: sets req.user itself."""
    token = req.headers_in.get("X-Token")
    if token == "t0ken":
        req.user = "tokenuser"
        req.ap_auth_type = "Token"
        return apache.OK
    return apache.HTTP_UNAUTHORIZED


def authen_ok_without_user(req):
    return apache.OK


def authz(req):
    record(req, "authz")
    if req.user == "bob":
        return apache.HTTP_FORBIDDEN
    return apache.DECLINED  # let mod_authz_core's Require decide


# ---- req.add_handler ----

def adds_handlers(req):
    record(req, "adder")
    req.add_handler("PythonFixupHandler", "phases::added_fixup")
    req.add_handler("PythonHandler", "phases::content")
    try:
        req.add_handler("PythonBogusHandler", "phases::content")
    except IndexError as e:
        req.notes["bogus"] = "IndexError"
    try:
        req.add_handler("PythonFixupHandler", "not a handler")
    except ValueError:
        req.notes["badname"] = "ValueError"
    return apache.OK


def adds_with_dir(req):
    req.add_handler("PythonFixupHandler", "dynonly::fixup", req.get_options()["extradir"])
    return apache.OK


def added_fixup(req):
    record(req, "added_fixup")
    # Added to the phase that is running: runs in the same pass, after this one.
    req.add_handler("PythonFixupHandler", "phases::added_fixup2")
    req.headers_out["X-Notes"] = req.notes.get("bogus", "") + "," + req.notes.get("badname", "")
    return apache.OK


def added_fixup2(req):
    record(req, "added_fixup2")
    return apache.OK


# ---- failures in every phase ----

def boom(req):
    raise ValueError("boom in %s" % req.phase)


def returns_bad(req):
    return "not a status"


# ---- internal redirect from a phase other than the content phase ----

def redirect_in_fixup(req):
    record(req, "redirecting")
    req.internal_redirect("/ph/trail")
    return apache.DONE
