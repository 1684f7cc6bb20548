"""mod_python 3.5 compatibility: `from mod_python import apache` works under mod_py."""
from .version import version as mp_version

__all__ = ["apache", "cgihandler", "psp", "publisher", "util", "Session", "Cookie", "wsgi",
           "httpdconf", "version"]
