"""A mod_python 3.5 publisher module."""
import os  # a module: reachable as an attribute, never published nor traversed


def index(req):
    return "<html><body>index page</body></html>"


def hello(req, name="world", n="1"):
    return "hello %s x%s" % (name, n)


def _private(req):
    return "secret"


def kwargs(req, **kw):
    return ",".join(sorted(kw))


class Klass:
    def method(self):
        return "class method"


class Thing:
    colour = "blue"

    def shout(self, word="hi"):
        return word.upper()

    def _hidden(self):
        return "hidden"


obj = Thing()


def inner_auth(req):
    __auth_realm__ = "Inner"
    __auth__ = {"carol": "pw"}
    return "inner ok"


def computed_auth(req):
    __auth__ = dict(carol="pw")  # not a literal: refused, never granted
    return "should not be served"
