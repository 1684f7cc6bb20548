"""mod_python.publisher page for bench/: the hello scenario."""


def hello(req):
    req.content_type = "text/plain"
    return "Hello, World!\n"
