"""Unit tests of modpy._logging (pure Python): level mapping and line buffering.

The e2e tests check the same records reach a real Apache's error log; here the `_modpy`
entry point is replaced by a recorder so the Python logic is tested on its own.
"""
from __future__ import annotations

import logging
import sys
import threading
import types
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "pylib"))

records: list[tuple[int, str]] = []
fake = types.ModuleType("_modpy")
for i, name in enumerate(["EMERG", "ALERT", "CRIT", "ERR", "WARNING", "NOTICE", "INFO", "DEBUG"]):
    setattr(fake, f"APLOG_{name}", i)
fake.version = "test"  # type: ignore[attr-defined]
fake.log_error = lambda level, msg: records.append((level, msg))  # type: ignore[attr-defined]
sys.modules.setdefault("_modpy", fake)

from modpy import _logging  # noqa: E402


def test_level_mapping() -> None:
    assert _logging.apache_level(logging.CRITICAL) == 2
    assert _logging.apache_level(logging.ERROR) == 3
    assert _logging.apache_level(logging.WARNING) == 4
    assert _logging.apache_level(logging.INFO) == 6
    assert _logging.apache_level(logging.DEBUG) == 7
    assert _logging.apache_level(5) == 7
    assert _logging.python_level(7) == logging.DEBUG
    assert _logging.python_level(6) == logging.INFO
    assert _logging.python_level(5) == logging.WARNING  # notice
    assert _logging.python_level(4) == logging.WARNING
    assert _logging.python_level(3) == logging.ERROR
    assert _logging.python_level(1) == logging.CRITICAL


def test_stream_buffers_whole_lines_per_thread() -> None:
    records.clear()
    s = _logging.ErrorLogStream("<stdout>", 3)
    s.write("par")
    assert records == []
    s.write("tial\nsecond\nthi")

    def other() -> None:
        s.write("other thread\n")

    t = threading.Thread(target=other)
    t.start()
    t.join()
    s.flush()
    assert records == [(3, "partial"), (3, "second"), (3, "other thread"), (3, "thi")]


def test_handler_splits_multiline_records() -> None:
    records.clear()
    h = _logging.ApacheLogHandler()
    h.setFormatter(logging.Formatter("%(name)s: %(message)s"))
    log = logging.getLogger("unit")
    log.addHandler(h)
    log.propagate = False
    log.setLevel(logging.DEBUG)
    log.warning("one\ntwo")
    assert records == [(4, "unit: one"), (4, "two")]  # one error-log line per text line


def test_stream_rejects_bytes() -> None:
    s = _logging.ErrorLogStream("<stderr>", 3)
    try:
        s.write(b"x")  # type: ignore[arg-type]
    except TypeError as e:
        assert "must be str" in str(e)
    else:
        raise AssertionError("bytes accepted")
