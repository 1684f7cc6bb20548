"""An authn provider module without get_realm_hash (Basic only)."""
from modpy import apache


def check_password(req, user, password):
    return apache.AUTH_USER_NOT_FOUND
