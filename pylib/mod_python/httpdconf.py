"""mod_python.httpdconf: httpd.conf text built from Python objects, as in mod_python 3.5.

`str()` of a tree gives the configuration text and `repr()` the Python that builds it:

    >>> print(Container(Listen(8080), Location("/app", SetHandler("mod_python"))))
    Listen 8080
    <Location /app>
      SetHandler mod_python
    </Location>

Each directive is a class named after it (`PythonHandler("x")`), each section a class taking its
argument then its contents (`Directory("/srv", ...)`). mod_python's test suite and its
`mod_python create` tool build their configurations this way.
"""

from __future__ import annotations

from typing import Any, Optional, Union

__all__ = ["Directive", "Container", "ContainerTag", "Comment", "quote_if_space"]


def _slashes(s: str, flip: bool) -> str:
    # Windows paths written with backslashes still read as paths in httpd.conf.
    return s.replace("\\", "/") if flip else s


class Directive:
    """One line: `Name value`."""

    def __init__(self, name: str, val: Any, flipslash: bool = True) -> None:
        self.name, self.val, self.flipslash = name, val, flipslash
        self.indent = 0

    def __str__(self) -> str:
        return _slashes(f"{' ' * self.indent}{self.name} {self.val}\n", self.flipslash)

    def __repr__(self) -> str:
        return _slashes(f"{' ' * self.indent}{self.name}({self.val!r})", self.flipslash)


class Comment:
    """`# text`, one line per line of text."""

    def __init__(self, comment: str) -> None:
        self.comment = comment
        self.indent = 0

    def __str__(self) -> str:
        pad = " " * self.indent
        return "".join(f"{pad}# {line}\n" for line in self.comment.splitlines())

    def __repr__(self) -> str:
        pad = " " * self.indent
        lines = [repr(line + "\n") for line in self.comment.splitlines()] or ["''"]
        return f"{pad}Comment(" + f"\n{pad}        ".join(lines) + ")"


Node = Union[Directive, "Container", "ContainerTag", Comment]


class Container:
    """A list of directives, sections and comments with no text of its own.

    `only_if` is a Python expression: when it is false the container prints nothing.
    """

    def __init__(self, *args: Node, **kwargs: Any) -> None:
        self.args: list[Node] = list(args)
        self.indent = 0
        self.only_if: Optional[str] = kwargs.get("only_if")

    def append(self, value: Node) -> None:
        if not isinstance(value, (Directive, Container, ContainerTag, Comment)):
            raise TypeError("appended value must be an instance of Directive, Container, "
                            "ContainerTag or Comment")
        self.args.append(value)

    def __str__(self) -> str:
        if self.only_if and not eval(self.only_if):  # noqa: S307 - the caller's own expression
            return ""
        for arg in self.args:
            arg.indent = self.indent
        return "".join(str(arg) for arg in self.args)

    def __repr__(self) -> str:
        pad = " " * self.indent
        for arg in self.args:
            arg.indent = self.indent + 4
        inner = "".join(f"\n{arg!r}," for arg in self.args)
        tail = f"    only_if={self.only_if!r})" if self.only_if else ")"
        return f"{pad}Container({inner}\n{pad}{tail}"


class ContainerTag:
    """A section: `<Tag attr>` contents `</Tag>`."""

    def __init__(self, tag: str, attr: Any, args: Any, flipslash: bool = True) -> None:
        self.tag, self.attr, self.args, self.flipslash = tag, attr, list(args), flipslash
        self.indent = 0

    def __str__(self) -> str:
        pad = " " * self.indent
        for arg in self.args:
            arg.indent = self.indent + 2
        head = _slashes(f"{pad}<{self.tag} {self.attr}>\n", self.flipslash)
        return head + "".join(str(arg) for arg in self.args) + f"{pad}</{self.tag}>\n"

    def __repr__(self) -> str:
        pad = " " * self.indent
        for arg in self.args:
            arg.indent = self.indent + 4
        head = _slashes(f"{pad}{self.tag}({self.attr!r},", self.flipslash)
        return head + "".join(f"\n{arg!r}," for arg in self.args) + f"\n{pad})"


def quote_if_space(s: str) -> str:
    """Quotes a path that has a space in it (httpd splits arguments on spaces)."""
    return f'"{s}"' if " " in s else s


# Values that are not paths: a backslash in them is an escape, kept as written.
_VERBATIM = {"LogFormat", "PythonPath"}


def _directive_class(name: str) -> type:
    flip = name not in _VERBATIM

    def __init__(self: Directive, val: Any) -> None:
        Directive.__init__(self, name, val, flip)
    return type(name, (Directive,), {"__init__": __init__, "__doc__": f"The {name} directive."})


def _section_class(name: str) -> type:
    def __init__(self: ContainerTag, attr: Any, *args: Node) -> None:
        ContainerTag.__init__(self, name, attr, args)
    return type(name, (ContainerTag,), {"__init__": __init__, "__doc__": f"A <{name}> section."})


# The directives of mod_python 3.5's httpdconf, with a few more that configurations use.
DIRECTIVES = """
AddHandler AddOutputFilter AddType Alias AllowOverride AuthBasicAuthoritative AuthBasicProvider
AuthName AuthType AuthUserFile CustomLog DirectoryIndex DocumentRoot ErrorLog Group Include
KeepAlive KeepAliveTimeout Listen LoadModule LockFile LogFormat LogLevel MaxClients
MaxConnectionsPerChild MaxRequestWorkers MaxRequestsPerChild MaxSpareServers MaxSpareThreads
MaxThreadsPerChild MinSpareServers MinSpareThreads Mutex NameVirtualHost NumServers Options
PidFile Require ServerAdmin ServerName ServerPath ServerRoot SetHandler StartServers
StartThreads ThreadsPerChild Timeout TypesConfig User
PythonAccessHandler PythonAuthenHandler PythonAuthzHandler PythonAutoReload
PythonCleanupHandler PythonConnectionHandler PythonDebug PythonFixupHandler PythonHandler
PythonHeaderParserHandler PythonImport PythonInitHandler PythonInputFilter
PythonInterpPerDirective PythonInterpPerDirectory PythonInterpreter PythonLogHandler
PythonOption PythonOptimize PythonOutputFilter PythonPath PythonPostReadRequestHandler
PythonTransHandler PythonTypeHandler
""".split()
SECTIONS = "Directory DirectoryMatch Files FilesMatch IfDefine IfModule Limit LimitExcept " \
           "Location LocationMatch VirtualHost".split()

for _name in DIRECTIVES:
    globals()[_name] = _directive_class(_name)
for _name in SECTIONS:
    globals()[_name] = _section_class(_name)
__all__ += DIRECTIVES + SECTIONS
del _name
