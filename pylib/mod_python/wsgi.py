"""mod_python.wsgi under mod_py: the same handler, on mod_py's WSGI core."""
from modpy.wsgi import handler  # noqa: F401
