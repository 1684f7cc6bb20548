"""Type stub of ``_modpy``, the module built into mod_py's Apache module (src/python/).

Its API is typed where users meet it, in ``modpy/apache.pyi`` and ``modpy/wsgi.pyi``; this
stub names what modpy's own Python code uses and leaves the rest as ``Any``."""
from typing import Any

version: str
APLOG_CRIT: int
APLOG_ERR: int
APLOG_WARNING: int
APLOG_NOTICE: int
APLOG_INFO: int
APLOG_DEBUG: int

def log_error(level: int, message: str) -> None: ...
def __getattr__(name: str) -> Any: ...
