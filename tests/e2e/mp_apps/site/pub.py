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


def nested_auth(req):
    def __auth__(req, user, password):
        req.notes["auth_called"] = "1"
        return (user, password) == ("carol", "pw")

    def __access__(req, user):
        return user == "carol"
    return "nested ok, auth_called=" + req.notes.get("auth_called", "0")


class Desk:
    def method(self, req):
        def __auth__(req, user, password):
            return (user, password) == ("dave", "pw")
        return "method ok"


desk = Desk()


def closure_auth(req):
    allowed = "carol"

    def __auth__(req, user, password):  # needs `allowed`: cannot be run alone, refused
        return user == allowed
    return "should not be served"


def computed_auth(req):
    __auth__ = dict(carol="pw")  # not a literal: refused, never granted
    return "should not be served"
