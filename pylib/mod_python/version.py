"""mod_python.version: the mod_python release whose API mod_py provides."""
version = "3.5.0"
