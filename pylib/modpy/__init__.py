"""mod_py: Python inside Apache httpd.

``modpy.apache`` is the Apache API (request, connection, server, tables, constants).
This package is imported by mod_py in each Apache child when Python starts.
"""
from __future__ import annotations

import atexit
import logging
import sys

__all__ = ["apache", "version"]

try:
    import _modpy  # built into mod_py's Apache module

    version: str = _modpy.version
except ImportError:  # imported outside Apache (tests, type checkers)
    version = "0.1.0"


def _child_init(apache_loglevel: int) -> None:
    """Called by mod_py once per child after Python starts: route logging, print() and
    sys.stderr to Apache's error log."""
    from . import _logging

    _logging.install(apache_loglevel)


def _child_exit() -> None:
    """Called when the Apache child exits: run atexit functions, flush logs."""
    try:
        atexit._run_exitfuncs()
    finally:
        logging.shutdown()
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:
                pass
