"""`import _apache`: mod_python's C module was importable by this top-level name (its test
suite and some handlers use `_apache._global_lock`). Under mod_py it is mod_python._apache,
the same module object."""
import sys

from mod_python import _apache

sys.modules[__name__] = _apache
