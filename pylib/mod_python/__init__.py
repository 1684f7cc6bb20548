"""mod_python 3.5 compatibility: `from mod_python import apache` works under mod_py."""
