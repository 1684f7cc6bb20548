"""Handlers written for mod_python 3.5 (only mod_python imports), served by mod_py."""
import hashlib
import json

from mod_python import apache, util


def _vm(name):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(name + ":"):
                return int(line.split()[1])
    return 0


def _describe(item):
    if item.filename:
        data = item.file
        h = hashlib.sha256()
        size = 0
        data.seek(0)
        while True:
            block = data.read(1 << 20)
            if not block:
                break
            h.update(block)
            size += len(block)
        return {"filename": item.filename, "type": item.type, "size": size, "sha256": h.hexdigest(),
                "on_disk": hasattr(data, "fileno") and not hasattr(data, "getvalue")}
    return {"value": str(item), "type": item.type}


def form(req):
    before = _vm("VmHWM")
    fs = util.FieldStorage(req, keep_blank_values=1)
    out = {
        "items": [[name, _describe(item)] for name, item in fs.items()],
        "keys": sorted(fs.keys()),
        "first_a": fs.getfirst("a"),
        "list_a": [str(x) for x in fs.getlist("a")],
        "len": len(fs),
        "has_b": "b" in fs,
        "peak_growth_kib": _vm("VmHWM") - before,
    }
    req.content_type = "application/json"
    req.write(json.dumps(out).encode())
    return apache.OK


def qs(req):
    req.content_type = "application/json"
    req.write(json.dumps({"qs": util.parse_qs(req.args or "", 1),
                          "qsl": util.parse_qsl(req.args or "")}).encode())
    return apache.OK


def go(req):
    util.redirect(req, "/elsewhere", permanent=bool(req.args))


def apply(req):
    fs = util.FieldStorage(req)

    def target(a, b="default"):
        return f"a={a} b={b}"

    req.write(util.apply_fs_data(target, fs).encode())
    return apache.OK
