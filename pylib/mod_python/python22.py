"""mod_python.python22: a shim for Python 2.2 in mod_python; nothing is needed on Python 3."""
