"""pytest fixtures: real Apache instances under each MPM (see harness.py)."""
from __future__ import annotations

import sys
import textwrap
from pathlib import Path
from typing import Callable, Iterator

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from harness import MPMS, Apache  # noqa: E402


@pytest.fixture(params=MPMS)
def mpm(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def apache(mpm: str, request: pytest.FixtureRequest) -> Iterator[Callable[..., Apache]]:
    """apache(conf_body, files={"app.py": "..."}, **kw) -> a started Apache under `mpm`.

    Files are written (dedented) under the instance's root, whose path replaces @ROOT@ in
    the config. Every instance is stopped at the end; a failing test prints its error log.
    """
    started: list[Apache] = []

    def make(body: str, files: dict[str, str | bytes] | None = None, start: bool = True, **kw) -> Apache:
        kw.setdefault("mpm", mpm)
        a = Apache(textwrap.dedent(body), **kw)
        for name, content in (files or {}).items():
            p = a.root / name
            p.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(content, bytes):
                p.write_bytes(content)
            else:
                p.write_text(textwrap.dedent(content))
        started.append(a)
        return a.start() if start else a

    yield make
    failed = getattr(request.node, "rep_call", None)
    for a in started:
        a.stop()
        if failed is not None and failed.failed:
            print(f"\n--- error log of {a.mpm} instance {a.root} ---\n{a.log_text()[-4000:]}")
        else:
            a.remove()


@pytest.hookimpl(tryfirst=True, hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):
    outcome = yield
    rep = outcome.get_result()
    setattr(item, "rep_" + rep.when, rep)
