"""mod_python 3.5 module-level API, as handlers use it."""
import json
import os
import sys

from mod_python import _apache, apache, version


def info(req):
    here = os.path.dirname(__file__)
    helper = apache.import_module("mp_helper_mod", path=[os.path.join(here, "extra")])
    env = apache.build_cgi_env(req)
    _apache._global_lock(req.server, "test-key")
    _apache._global_unlock(req.server, "test-key")
    req.content_type = "application/json"
    req.write(json.dumps({
        "helper": helper.VALUE,
        "script_name": env.get("SCRIPT_NAME"), "method": env.get("REQUEST_METHOD"),
        "server_root": apache.server_root(),
        "foreground": apache.exists_config_define("FOREGROUND"),
        "nope": apache.exists_config_define("NO_SUCH_DEFINE"),
        "version": version.version,
        "same_objects": apache.OK == 0 and apache.SERVER_RETURN is __import__("modpy.apache", fromlist=["x"]).SERVER_RETURN,
        "optimize": sys.flags.optimize,
        "table": apache.make_table({"A": "1"}).get("a"),
    }).encode())
    return apache.OK
