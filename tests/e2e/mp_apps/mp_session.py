"""A 3.5-style session login: FileSession with a SignedCookie."""
import json

from mod_python import Session, apache, util

SECRET = "session-secret-for-tests"


def login(req):
    sess = Session.FileSession(req, secret=SECRET)
    fs = util.FieldStorage(req)
    sess["user"] = fs.getfirst("user")
    sess["visits"] = 0
    sess.save()
    req.write(sess.id().encode())
    return apache.OK


def whoami(req):
    sess = Session.Session(req, secret=SECRET)
    if not sess.is_new():
        sess["visits"] += 1
        sess.save()
    req.content_type = "application/json"
    req.write(json.dumps({"user": sess.get("user"), "new": sess.is_new(), "visits": sess.get("visits"),
                          "sid": sess.id()}).encode())
    return apache.OK


def logout(req):
    sess = Session.FileSession(req, secret=SECRET)
    sess.invalidate()
    req.write(b"bye")
    return apache.OK


def unsigned(req):
    sess = Session.FileSession(req)  # no secret: plain cookie, id still checked
    req.write(("new" if sess.is_new() else "old").encode())
    sess.save()
    return apache.OK


def dbm_counter(req):
    # Session.Session picks DbmSession from PythonOption mod_python.session.session_type.
    sess = Session.Session(req, secret=SECRET)
    sess["n"] = sess.get("n", 0) + 1
    sess.save()
    req.write(json.dumps({"n": sess["n"], "type": type(sess).__name__, "pid": __import__("os").getpid()}).encode())
    return apache.OK
