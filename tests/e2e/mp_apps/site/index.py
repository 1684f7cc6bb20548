"""The directory's default module: /site/ calls index, /site/<name> (no <name>.py) calls <name>."""


def index(req):
    return "site index"


def extra(req):
    return "extra from index.py"
