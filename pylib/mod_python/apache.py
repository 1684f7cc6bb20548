"""mod_python.apache under mod_py: the same objects as modpy.apache, plus the few 3.5 names
that are plain Python (``table``/``make_table``, a standalone table)."""
from __future__ import annotations

from typing import Any, Iterator, Optional

from modpy.apache import *  # noqa: F401,F403
from modpy.apache import log_error, main_server, mpm_query  # noqa: F401


class table:
    """A standalone case-insensitive, multi-valued table (mod_python's ``apache.table()``,
    for tables not tied to a request: request tables are modpy.apache.Table)."""

    def __init__(self, items: Any = None) -> None:
        self._items: list[tuple[str, str]] = []
        if items:
            for k, v in (items.items() if hasattr(items, "items") else items):
                self.add(k, v)

    def add(self, key: str, value: str) -> None:
        self._items.append((key, value))

    def __setitem__(self, key: str, value: str) -> None:
        self.__delitem__(key) if key in self else None
        self._items.append((key, value))

    def __delitem__(self, key: str) -> None:
        k = key.lower()
        self._items = [(a, b) for a, b in self._items if a.lower() != k]

    def __getitem__(self, key: str) -> Any:
        found = [v for k, v in self._items if k.lower() == key.lower()]
        if not found:
            raise KeyError(key)
        return found[0] if len(found) == 1 else found

    def get(self, key: str, default: Optional[Any] = None) -> Any:
        try:
            return self[key]
        except KeyError:
            return default

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and any(k.lower() == key.lower() for k, _ in self._items)

    has_key = __contains__

    def keys(self) -> list[str]:
        return [k for k, _ in self._items]

    def values(self) -> list[str]:
        return [v for _, v in self._items]

    def items(self) -> list[tuple[str, str]]:
        return list(self._items)

    def __iter__(self) -> Iterator[str]:
        return iter(self.keys())

    def __len__(self) -> int:
        return len(self._items)

    def __repr__(self) -> str:
        return f"table({self._items!r})"


make_table = table
