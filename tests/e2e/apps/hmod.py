"""A PythonHandlerModule: functions named after the phases; the phases it has no function for
(accesshandler, typehandler, ...) are skipped."""
from modpy import apache


def fixuphandler(req):
    req.notes["hmod"] = "fixup:" + req.phase
    req.headers_out["X-Hmod"] = "fixup"
    return apache.OK


def handler(req):
    req.content_type = "text/plain"
    req.write(("hmod content after " + req.notes.get("hmod", "-")).encode())
    return apache.OK


def loghandler(req):
    apache.log_error("hmod-log-handler " + req.uri, apache.APLOG_NOTICE)
    return apache.OK
