"""mod_python.apache under mod_py: the same names as modpy.apache."""
from modpy.apache import *  # noqa: F401,F403
from modpy.apache import log_error, main_server, mpm_query  # noqa: F401
