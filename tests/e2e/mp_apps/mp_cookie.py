"""mod_python 3.5 cookie code, served by mod_py."""
import json

from mod_python import Cookie, apache

SECRET = "not-a-real-secret"


def set_cookies(req):
    Cookie.add_cookie(req, "plain", "hello", path="/", httponly=True)
    Cookie.add_cookie(req, Cookie.SignedCookie("signed", "alice", SECRET, path="/"))
    Cookie.add_cookie(req, Cookie.MarshalCookie("data", {"user": "alice", "n": [1, 2]}, SECRET))
    req.write(b"set")
    return apache.OK


def read_cookies(req):
    plain = Cookie.get_cookies(req)
    signed = Cookie.get_cookies(req, Cookie.SignedCookie, secret=SECRET)
    marshalled = Cookie.get_cookie(req, "data", Cookie.MarshalCookie, secret=SECRET)
    out = {
        "plain": {k: str(v.value) for k, v in plain.items()},
        "signed_ok": {k: isinstance(v, Cookie.SignedCookie) for k, v in signed.items()},
        "signed_value": str(signed["signed"].value) if isinstance(signed.get("signed"), Cookie.SignedCookie) else None,
        "data": marshalled.value if isinstance(marshalled, Cookie.MarshalCookie) else None,
    }
    req.content_type = "application/json"
    req.write(json.dumps(out).encode())
    return apache.OK
