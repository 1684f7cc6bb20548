"""Auth providers for test_auth.py (PythonAuthnProvider / PythonAuthzProvider)."""
import hashlib

from modpy import apache

USERS = {"alice": "wonderland", "carol": "carolpw"}
GROUPS = {"admins": {"alice"}, "staff": {"carol"}}


def check_password(req, user, password):
    # The request's headers are available to providers.
    if req.headers_in.get("X-Block") == user:
        return apache.AUTH_DENIED
    if user not in USERS:
        return apache.AUTH_USER_NOT_FOUND
    return apache.AUTH_GRANTED if USERS[user] == password else apache.AUTH_DENIED


def get_realm_hash(req, user, realm):
    if user not in USERS:
        return None
    return hashlib.md5(("%s:%s:%s" % (user, realm, USERS[user])).encode()).hexdigest()


def check_bool(req, user, password):
    if user not in USERS:
        return None
    return USERS[user] == password


def raises(req, user, password):
    raise KeyError("provider exploded for " + user)


def bad_type(req, user, password):
    return "yes"


def bad_int(req, user, password):
    return 42


def realm_raises(req, user, realm):
    raise RuntimeError("realm hash exploded")


def realm_bad(req, user, realm):
    return "not-a-hash"


def realm_upper(req, user, realm):
    return get_realm_hash(req, user, realm).upper()


# ---- authz ----

def in_group(req, require_args):
    """Require pygroup group [group ...]"""
    if req.user is None:
        return apache.AUTHZ_DENIED_NO_USER
    return any(req.user in GROUPS.get(g, ()) for g in require_args.split())


def header_is(req, require_args):
    """Require pyheader value [value ...]: granted when X-Flag is one of the values."""
    return req.headers_in.get("X-Flag") in require_args.split()


def neutral(req, require_args):
    return apache.AUTHZ_NEUTRAL


def authz_raises(req, require_args):
    raise ValueError("authz exploded: " + require_args)


def authz_bad(req, require_args):
    return None


def whoami(req):
    req.content_type = "text/plain"
    req.write(("user=%s type=%s" % (req.user, req.ap_auth_type)).encode())
    return apache.OK
