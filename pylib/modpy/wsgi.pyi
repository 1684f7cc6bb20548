"""Type stubs for modpy.wsgi (also reachable as mod_python.wsgi's ``handler``).

``handler`` serves a WSGI application from a PythonHandler; the classes are the objects the
WSGI core puts in the environ (implemented in Rust, src/python/wsgi.rs).
"""
from typing import Any, Iterator, final

from .apache import Request

__all__ = ["handler", "FileWrapper", "Input", "WSGIError"]

def handler(req: Request) -> int:
    """PythonHandler modpy.wsgi: runs the application named by
    ``PythonOption wsgi.application module::callable`` (or ``mod_python.wsgi.application``),
    mounted at ``PythonOption wsgi.base_uri`` (or ``mod_python.wsgi.base_uri``; default "").
    Returns apache.OK, apache.DONE (response cut or client gone) or an HTTP status (500)."""

class WSGIError(Exception):
    """What the WSGI core raises, and logs as one line, when an application breaks PEP 3333
    (bad status or header, start_response twice, non-bytes body, Content-Length mismatch)."""

@final
class Input:
    """environ["wsgi.input"]: the request body, read from Apache on demand in bounded pieces
    (de-chunked). Created by mod_py only."""

    def read(self, size: int | None = -1) -> bytes: ...
    def readline(self, size: int | None = -1) -> bytes: ...
    def readlines(self, hint: int | None = -1) -> list[bytes]: ...
    def __iter__(self) -> Iterator[bytes]: ...
    def __next__(self) -> bytes: ...

@final
class FileWrapper:
    """environ["wsgi.file_wrapper"]: iterates ``filelike.read(blksize)`` blocks. Returned as
    the response over a regular file with fileno(), the file is sent by Apache as a file
    bucket (sendfile, Content-Length, byte ranges)."""

    def __init__(self, filelike: Any, blksize: int = 8192) -> None: ...
    def __iter__(self) -> Iterator[Any]: ...
    def __next__(self) -> Any: ...
    def close(self) -> None: ...
