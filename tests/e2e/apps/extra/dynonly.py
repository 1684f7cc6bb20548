"""Only importable through add_handler(..., dir=this directory): not on sys.path."""
import os

from modpy import apache


def fixup(req):
    req.headers_out["X-Dynonly"] = os.path.basename(__file__) + ":" + req.phase
    return apache.OK
