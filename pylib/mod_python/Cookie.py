"""mod_python.Cookie (the 3.5 API): Cookie, SignedCookie, MarshalCookie, and the helpers
add_cookie, get_cookies, get_cookie.

SignedCookie values carry an HMAC (MD5, as 3.5 issues them, so existing cookies stay valid)
of name and value under the application's secret; a cookie whose signature does not check
out comes back as a plain ``Cookie`` (test with ``isinstance``), never as a SignedCookie.
MarshalCookie deserialises only data whose signature checks out: a forged or truncated
cookie is never handed to ``marshal.loads``.
"""
from __future__ import annotations

import base64
import hmac
import marshal
import re
import time
from typing import Any, Optional, Type, TypeVar, Union

from . import apache

__all__ = ["CookieError", "Cookie", "SignedCookie", "MarshalCookie", "add_cookie",
           "get_cookies", "get_cookie"]


class CookieError(Exception):
    pass


C = TypeVar("C", bound="Cookie")

# name=value pairs of a Cookie request header ($-attributes of RFC 2109 included)
_PAIR = re.compile(r'\s*(?P<key>[^=;,\s]+)\s*=\s*(?P<val>"(?:\\.|[^"\\])*"|[^;,]*)\s*[;,]?')


class Cookie:
    """One cookie: name, value and the attributes of Set-Cookie."""

    _valid_attr = ("version", "path", "domain", "secure", "comment", "expires", "max_age",
                   "samesite", "commentURL", "discard", "port", "httponly")

    def __init__(self, name: str, value: Any, **kw: Any) -> None:
        self.name, self.value = name, value
        self.version: Optional[str] = None
        self.path: Optional[str] = None
        self.domain: Optional[str] = None
        self.secure = False
        self.comment: Optional[str] = None
        self.max_age: Optional[int] = None
        self.samesite: Optional[str] = None
        self.httponly = False
        self._expires: Optional[str] = None
        for k, v in kw.items():
            if k.lower() not in [a.lower() for a in self._valid_attr]:
                raise CookieError(f"Invalid cookie attribute: {k}")
            setattr(self, k.lower(), v)

    @property
    def expires(self) -> Optional[str]:
        return self._expires

    @expires.setter
    def expires(self, value: Union[int, float, str, None]) -> None:
        if isinstance(value, (int, float)):
            value = time.strftime("%a, %d-%b-%Y %H:%M:%S GMT", time.gmtime(value))
        self._expires = value

    def _value_text(self) -> str:
        return str(self.value)

    def __str__(self) -> str:
        """The value of a Set-Cookie header."""
        value = self._value_text()
        if any(c in value for c in ';,"\r\n') or any(c in self.name for c in ';,= \r\n"'):
            raise CookieError(f"cookie {self.name!r} has a character that cannot be sent")
        # Attribute names in lower case, as 3.5 wrote them (clients match them case-blind).
        parts = [f"{self.name}={value}"]
        for attr, label in (("version", "version"), ("path", "path"), ("domain", "domain"),
                            ("comment", "comment"), ("max_age", "max-age"), ("samesite", "samesite")):
            v = getattr(self, attr, None)
            if v is not None:
                parts.append(f"{label}={v}")
        if self._expires:
            parts.append(f"expires={self._expires}")
        if self.secure:
            parts.append("secure")
        if self.httponly:
            parts.append("httponly")
        return "; ".join(parts)

    def __repr__(self) -> str:
        return f"<{type(self).__name__}: {self}>"

    @classmethod
    def parse(cls: Type[C], s: str, **kw: Any) -> dict[str, "Cookie"]:
        """The cookies of a Cookie request header, {name: cookie}."""
        out: dict[str, Cookie] = {}
        for m in _PAIR.finditer(s or ""):
            key, val = m.group("key"), m.group("val").strip()
            if len(val) >= 2 and val[0] == val[-1] == '"':
                val = val[1:-1]
            if key.startswith("$"):
                continue
            c = cls._from_header(key, val, **kw)
            if c is not None:
                out[key] = c
        return out

    @classmethod
    def _from_header(cls, name: str, value: str, **kw: Any) -> Optional["Cookie"]:
        return cls(name, value)


class SignedCookie(Cookie):
    """A cookie whose value is signed with `secret` (HMAC of name + value)."""

    def __init__(self, name: str, value: Any, secret: Union[str, bytes, None] = None, **kw: Any) -> None:
        if not secret:
            raise CookieError("SignedCookie needs a secret")
        self._secret = secret.encode() if isinstance(secret, str) else secret
        super().__init__(name, value, **kw)

    def hexdigest(self, text: str) -> str:
        return hmac.new(self._secret, (self.name + text).encode("utf-8", "surrogateescape"), "md5").hexdigest()

    def _value_text(self) -> str:
        v = str(self.value)
        return self.hexdigest(v) + v

    @classmethod
    def _from_header(cls, name: str, value: str, secret: Union[str, bytes, None] = None, **kw: Any) -> Optional[Cookie]:
        if not secret:
            raise CookieError("SignedCookie.parse needs a secret")
        sig, data = value[:32], value[32:]
        probe = cls(name, data, secret)
        if len(value) < 32 or not hmac.compare_digest(probe.hexdigest(data), sig):
            return Cookie(name, value)  # not ours, or tampered with: a plain Cookie
        return probe


class MarshalCookie(SignedCookie):
    """A signed cookie holding a Python value (marshal, base64)."""

    def _value_text(self) -> str:
        data = base64.b64encode(marshal.dumps(self.value)).decode("ascii")
        return self.hexdigest(data) + data

    @classmethod
    def _from_header(cls, name: str, value: str, secret: Union[str, bytes, None] = None, **kw: Any) -> Optional[Cookie]:
        checked = SignedCookie._from_header(name, value, secret)
        if not isinstance(checked, SignedCookie):
            return checked  # the signature failed: the data is never deserialised
        try:
            obj = marshal.loads(base64.b64decode(str(checked.value), validate=True))
        except (ValueError, EOFError, TypeError):
            return Cookie(name, value)
        return cls(name, obj, secret)


def add_cookie(req: Any, cookie: Union[Cookie, str], value: str = "", **kw: Any) -> None:
    """Sets a cookie on the response (a Cookie, or a name plus value and attributes)."""
    if not isinstance(cookie, Cookie):
        cookie = Cookie(cookie, value, **kw)
    req.headers_out.add("Set-Cookie", str(cookie))
    # Shared caches must not store a response that sets a cookie (as 3.5 does).
    if "Cache-Control" not in req.headers_out:
        req.headers_out["Cache-Control"] = 'no-cache="set-cookie"'


def get_cookies(req: Any, Class: Type[Cookie] = Cookie, **kw: Any) -> dict[str, Cookie]:
    """The request's cookies as {name: Class instance} (pass secret= for signed ones)."""
    header = req.headers_in.get("cookie")
    if not header:
        return {}
    if isinstance(header, list):
        header = "; ".join(header)
    return Class.parse(header, **kw)


def get_cookie(req: Any, name: str, Class: Type[Cookie] = Cookie, **kw: Any) -> Optional[Cookie]:
    return get_cookies(req, Class, **kw).get(name)


# mod_python.Cookie is imported for its classes; apache is here for 3.5 code that expects it.
_ = apache
