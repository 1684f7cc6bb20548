"""Hello world: the smallest mod_python-style content handler.

    <Location /hello>
        SetHandler modpy
        PythonHandler hello          # module "hello", function "handler" (the default)
    </Location>
"""
from modpy import apache


def handler(req):
    req.content_type = "text/plain; charset=utf-8"
    req.write("Hello, world!\n")
    return apache.OK
