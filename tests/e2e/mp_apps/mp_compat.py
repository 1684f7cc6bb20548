"""Handlers for test_mod_python_compat.py: what mod_python 3.5's own test suite relies on."""
from __future__ import annotations

import json
import os
import sys
from typing import Any

from mod_python import apache


def _send(req: Any, data: dict[str, Any]) -> int:
    req.content_type = "application/json"
    req.write(json.dumps(data).encode())
    return apache.OK


def at_import() -> None:
    # Called by `PythonImport mp_compat::at_import` when the child starts.
    apache.main_server.get_options()["imported_by"] = str(os.getpid())


def info(req: Any) -> int:
    hl = req.hlist
    return _send(req, {
        "pid": os.getpid(),
        "interpreter": req.interpreter,
        "apache_interpreter": apache.interpreter,
        "hlist": [hl.handler, hl.directory, hl.is_location],
        "document_root": req.document_root(),
        "filename": req.filename,
        "server_options": dict(req.server.get_options()),
        "main_options": dict(apache.main_server.get_options()),
        "server_debug": req.server.get_config().get("PythonDebug"),
        "req_debug": req.get_config().get("PythonDebug"),
    })


def add_first(req: Any) -> int:
    # A directory without the trailing slash: hlist.directory of the added handler has one.
    req.add_handler("PythonHandler", "mp_compat::added", os.path.dirname(__file__))
    req.write(b"first;")
    return apache.OK


def added(req: Any) -> int:
    hl = req.hlist
    req.write(f"added {hl.handler} {hl.directory}".encode())
    return apache.OK


def trans(req: Any) -> int:
    # PythonTransHandler picking the file; no PythonHandler: Apache's default handler serves it.
    req.filename = req.document_root() + "/file.txt"
    return apache.OK


def persist(req: Any) -> int:
    opts = apache.main_server.get_options()
    prev = opts.get("persisted")
    opts["persisted"] = req.args
    return _send(req, {"pid": os.getpid(), "prev": prev, "now": apache.main_server.get_options()["persisted"]})


def ext_py(req: Any) -> int:
    req.write(b"ext_py;")
    return apache.OK


def ext_other(req: Any) -> int:
    req.write(b"ext_other;")
    return apache.OK


def read_body(req: Any) -> int:
    # The client stalls mid-body: req.read() raises OSError after Apache's Timeout.
    data = req.read()
    req.write(b"read " + data)
    return apache.OK


def types(req: Any) -> int:
    t = apache.table()
    t["Content-Type"] = "text/plain"
    ci = [t["content-type"], "CONTENT-TYPE" in t]
    t.update({"X-A": "1"})
    copy = t.copy()
    popped = list(t.popitem())
    default = [t.setdefault("x-b", "2"), t.setdefault("X-B", "3")]
    eq_dict = t == {"content-type": "text/plain", "X-B": "2"}
    t.clear()
    return _send(req, {
        "conn_type": str(type(req.connection)),
        "server_type": str(type(req.server)),
        "table": {
            "ci": ci, "copy_len": len(copy), "popped": popped, "default": default,
            "eq_dict": eq_dict, "cleared": len(t), "copy_kept": copy.get("x-a"),
        },
        "options_eq": req.get_options() == apache.table({"opt_a": "1", "Opt_B": "2"}),
        "options_ne": req.get_options() == apache.table({"opt_a": "1"}),
        "mmn": apache.MODULE_MAGIC_NUMBER_MAJOR,
        "mmn_is_int": type(apache.MODULE_MAGIC_NUMBER_MAJOR) is int,
        "fname": req.finfo[apache.FINFO_FNAME],
        "canonical": req.canonical_filename,
        "uri_path": req.parsed_uri[apache.URI_PATH],
        "xmethods": repr(req.allowed_xmethods),
        "languages": repr(req.content_languages),
        "client_ip": req.connection.client_addr[0],
        "argv": sys.argv,
    })
