"""Subrequests, filters added from Python, cleanups: exercised by test_subrequests.py."""
import json

from modpy import apache

_kept = {}


def _json(req, obj):
    body = json.dumps(obj).encode()
    req.content_type = "application/json"
    req.write(body)
    return apache.OK


def _err(f):
    try:
        f()
        return "no error"
    except Exception as e:
        return "%s: %s" % (type(e).__name__, e)


def lookup(req):
    sub = req.lookup_uri("/static.txt")
    denied = req.lookup_uri("/sr/denied")
    byfile = req.lookup_file(req.get_options()["htdocs"] + "/dir/other.txt")
    relative = req.sub_req_lookup_uri("dir/other.txt")
    return _json(req, {
        "status": sub.status, "filename": sub.filename, "content_type": sub.content_type,
        "uri": sub.uri, "main_is_req": sub.main is req, "initial": sub.is_initial_req(),
        "same_object": req.lookup_uri("/static.txt") is not sub,
        "denied_status": denied.status,
        "file_filename": byfile.filename, "file_ctype": byfile.content_type,
        "relative_uri": relative.uri,
        "repr": repr(sub),
    })


def run(req):
    req.content_type = "text/plain"
    req.write(b"before|", 0)  # buffered: must go out before the subrequest's output
    rc = req.lookup_uri("/static.txt").run()
    req.write(b"|middle|")
    rc2 = req.lookup_uri("/sr/target?x=1").run_sub_req()
    denied = req.lookup_uri("/sr/denied")
    rc3 = denied.run()  # refused by access control: not run, its status comes back
    req.write(("|after %d %d %d" % (rc, rc2, rc3)).encode())
    return apache.OK


def target_fixup(req):
    req.notes["fx"] = "fixup-ran-in-subrequest"
    return apache.OK


def target(req):
    req.write(("target args=%s initial=%s main=%s notes=%s" % (
        req.args, req.is_initial_req(), req.main.uri if req.main else None,
        req.notes.get("fx"))).encode())
    return apache.OK


def destroy(req):
    sub = req.lookup_uri("/static.txt")
    before = sub.uri
    sub.destroy_sub_req()
    out = {
        "before": before,
        "uri_after": _err(lambda: sub.uri),
        "run_after": _err(sub.run),
        "destroy_again": _err(sub.destroy),
        "notes_after": _err(lambda: sub.notes["x"]),
        "alive": sub.is_alive(),
        "parent_uri": req.uri,
        "destroy_main": _err(req.destroy_sub_req),
        "run_main": _err(req.run),
    }
    req.notes["still"] = "ok"
    out["parent_notes"] = req.notes["still"]
    sub2 = req.lookup_uri("/static.txt")
    sub2.destroy()
    out["second_destroyed"] = sub2.is_alive()
    return _json(req, out)


def keep(req):
    """First call keeps a subrequest; the next call (after that request ended) uses it."""
    kept = _kept.get("sub")
    if kept is None:
        _kept["sub"] = req.lookup_uri("/static.txt")
        return _json(req, {"kept": True})
    del _kept["sub"]
    return _json(req, {"uri": _err(lambda: kept.uri), "run": _err(kept.run), "alive": kept.is_alive()})


def fixup_lookup(req):
    req.notes["sub_ctype"] = req.lookup_uri("/static.txt").content_type
    return apache.OK


def show_notes(req):
    return _json(req, {"sub_ctype": req.notes.get("sub_ctype")})


# ---- filters added from Python ----

def deflate(req):
    req.add_output_filter("DEFLATE")
    req.content_type = "text/plain"
    req.write(b"0123456789abcdef\n" * 1000)
    return apache.OK


def ssi(req):
    req.add_output_filter("INCLUDES")
    req.content_type = "text/html"
    req.write(b'uri=<!--#echo var="DOCUMENT_URI" -->;')
    return apache.OK


def upper(req):
    req.add_output_filter("CaseFilter")
    req.content_type = "text/plain"
    req.write(b"shout this")
    return apache.OK


def upper_input(req):
    req.add_input_filter("CaseFilterIn")
    body = req.read()
    req.content_type = "text/plain"
    req.write(body)
    return apache.OK


def unknown_filter(req):
    return _json(req, {
        "out": _err(lambda: req.add_output_filter("NO_SUCH_FILTER")),
        "in": _err(lambda: req.add_input_filter("NO_SUCH_FILTER")),
    })


def fixup_deflate(req):
    req.add_output_filter("DEFLATE")
    return apache.OK


# ---- cleanups ----

def server_cleanup(req):
    def done(data):
        apache.log_error("server-cleanup-ran " + data, apache.APLOG_NOTICE)
    req.server.register_cleanup(req, done, "child-exit")
    req.write(b"registered")
    return apache.OK


def nofile(req):
    """lookup_file without req.filename / relative lookup_uri without req.uri: a clear error,
    never a crash."""
    filename, uri = req.filename, req.uri
    req.filename = None
    file_err = _err(lambda: req.lookup_file("x.txt"))
    req.filename = filename
    req.uri = None
    uri_err = _err(lambda: req.lookup_uri("x.txt"))
    absolute = req.lookup_uri("/static.txt").status
    req.uri = uri
    return _json(req, {"file": file_err, "uri": uri_err, "absolute": absolute})


def cleanup_lookup_content(req):
    def cb(data):
        apache.log_error("register_cleanup lookup: " + _err(lambda: req.lookup_uri("/static.txt")),
                         apache.APLOG_NOTICE)
    req.register_cleanup(cb)
    req.write(b"ok")
    return apache.OK


def cleanup_lookup(req):
    apache.log_error("cleanup handler lookup: " + _err(lambda: req.lookup_uri("/static.txt")),
                     apache.APLOG_NOTICE)
    return apache.OK
