"""Module-level __auth__ / __access__ as in mod_python 3.5."""
__auth_realm__ = "Members"
__auth__ = {"alice": "wonder", "bob": "builder"}
__access__ = ["alice"]


def index(req):
    return "members only: " + req.user
