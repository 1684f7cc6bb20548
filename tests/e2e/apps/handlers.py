"""mod_python-style handlers exercised by test_handlers.py (one function per check)."""
import json
import logging
import os
import sys

from modpy import apache

log = logging.getLogger("handlers")
_kept = {}


def _send(req, body, ctype="text/plain"):
    if isinstance(body, (dict, list)):
        body, ctype = json.dumps(body).encode(), "application/json"
    req.content_type = ctype
    req.set_content_length(len(body))
    req.write(body)
    return apache.OK


def hello(req):
    return _send(req, b"Hello, World!\n")


def fields(req):
    c, s = req.connection, req.server
    return _send(req, {
        "method": req.method, "uri": req.uri, "unparsed_uri": req.unparsed_uri, "args": req.args,
        "path_info": req.path_info, "filename": req.filename, "protocol": req.protocol,
        "proto_num": req.proto_num, "hostname": req.hostname, "the_request": req.the_request,
        "status": req.status, "handler": req.handler, "method_number": req.method_number,
        "header_only": req.header_only, "request_time": req.request_time,
        "headers_in": dict(req.headers_in.items()), "user_agent": req.headers_in.get("user-agent"),
        "main": req.main, "prev": req.prev, "next": req.next, "parsed_uri": list(req.parsed_uri),
        "client_ip": c.client_ip, "remote_ip": c.remote_ip, "local_ip": c.local_ip,
        "remote_addr": list(c.remote_addr), "local_addr": list(c.local_addr), "conn_id": c.id,
        "keepalives": c.keepalives, "server_hostname": s.server_hostname, "port": s.port,
        "is_virtual": s.is_virtual, "timeout": s.timeout, "log_id": req.log_id,
        "same_object": req.connection.notes is not None and req is req,
        "clength": req.clength, "remaining": req.remaining, "read_length": req.read_length,
        "mtime": req.mtime, "chunked": req.chunked, "bytes_sent": req.bytes_sent,
        "canonical_filename": req.canonical_filename, "user": req.user,
        "ap_auth_type": req.ap_auth_type, "content_encoding": req.content_encoding,
        "range": req.range, "useragent_ip": req.useragent_ip,
        "construct_url": req.construct_url("/x"), "is_https": req.is_https(),
        "is_initial_req": req.is_initial_req(), "options": req.get_options(),
        "config": req.get_config(), "type": type(req).__name__,
        "module": type(req).__module__,
    })


def echo(req):
    body = req.read()
    req.content_type = "application/octet-stream"
    req.set_content_length(len(body))
    req.write(body)
    return apache.OK


def echo_chunks(req):
    """Reads the body in pieces of PythonOption chunk bytes (and readline for the rest)."""
    n = int(req.get_options().get("chunk", "1000"))
    parts = []
    while True:
        b = req.read(n)
        if not b:
            break
        parts.append(b)
    body = b"".join(parts)
    return _send(req, body, "application/octet-stream")


def lines(req):
    first = req.readline()
    second = req.readline(3)
    rest = req.readlines()
    return _send(req, {"first": first.decode(), "second": second.decode(), "rest": [l.decode() for l in rest]})


def count_body(req):
    """Reads the body in 1 MiB chunks, reporting the bytes read and this child's RSS."""
    def rss():
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    start = rss()
    total, peak = 0, start
    while True:
        b = req.read(1 << 20)
        if not b:
            break
        total += len(b)
        if total % (64 << 20) < (1 << 20):
            peak = max(peak, rss())
    peak = max(peak, rss())
    return _send(req, {"total": total, "rss_start_kib": start, "rss_peak_kib": peak})


def tables(req):
    h = req.headers_in
    t = req.notes
    t["a"] = "1"
    t.add("a", "2")
    t.add("A", "3")
    t["b"] = "x"
    t.merge("b", "y")
    out = {
        "getall_x_multi": h.getall("X-Multi"),
        "x_multi_item": h["x-multi"],
        "in": "host" in h, "not_in": "nope" in h,
        "len_notes": len(t), "a_all": t.getall("a"), "a_item": t["a"], "b": t["b"],
        "keys": list(t), "get_default": t.get("zzz", "dflt"),
    }
    t.unset("a")
    out["after_unset"] = "a" in t
    del t["b"]
    out["after_del"] = t.get("b")
    try:
        t["missing"]
    except KeyError:
        out["keyerror"] = True
    req.headers_out.add("X-Out", "one")
    req.headers_out.add("X-Out", "two")
    req.headers_out["Set-Cookie"] = "a=1"
    req.err_headers_out.add("Set-Cookie", "b=2")
    return _send(req, out)


def status_404(req):
    return apache.HTTP_NOT_FOUND


def status_teapot(req):
    return 410


def status_raise(req):
    raise apache.SERVER_RETURN(apache.HTTP_FORBIDDEN)


def status_declined(req):
    return apache.DECLINED


def status_done(req):
    req.status = 202
    req.content_type = "text/plain"
    req.write(b"accepted")
    return apache.DONE


def set_status(req):
    req.status = 201
    req.status_line = "201 Made It"
    req.headers_out["Location"] = "/somewhere"
    return _send(req, b"created")


def boom(req):
    raise ValueError("boom in handler")


def returns_none(req):
    req.write(b"x", 0)


def returns_str(req):
    return "OK"


def logs(req):
    log.debug("debug-record")
    log.info("info-record %s", req.uri)
    log.warning("warning-record")
    log.error("error-record")
    log.critical("critical-record")
    print("print-line")
    sys.stderr.write("stderr-line\n")
    req.log_error("req-log-error", apache.APLOG_NOTICE)
    req.server.log_error("server-log-warning", apache.APLOG_WARNING)
    apache.log_error("apache-log-error")
    return _send(req, b"logged")


def keep(req):
    """Keeps this request object; the next call uses the stale one."""
    old = _kept.get("req")
    _kept["req"] = req
    if old is None:
        return _send(req, b"kept")
    results = {}
    for name, fn in [
        ("uri", lambda: old.uri), ("write", lambda: old.write(b"x")),
        ("headers_in", lambda: old.headers_in), ("read", lambda: old.read()),
        ("alive", lambda: old.is_alive()),
    ]:
        try:
            results[name] = repr(fn())
        except RuntimeError as e:
            results[name] = "RuntimeError: " + str(e)
    return _send(req, results)


def keep_table(req):
    old = _kept.get("table")
    _kept["table"] = req.headers_in
    if old is None:
        return _send(req, b"kept")
    try:
        old.get("host")
        return _send(req, b"no error")
    except RuntimeError as e:
        return _send(req, ("RuntimeError: " + str(e)).encode())


def options(req):
    return _send(req, req.get_options())


def imported(req):
    return _send(req, {"preloaded": "preload_mod" in sys.modules,
                       "value": getattr(sys.modules.get("preload_mod"), "VALUE", None),
                       "pid_at_import": getattr(sys.modules.get("preload_mod"), "PID", None),
                       "pid": os.getpid()})


def syspath(req):
    return _send(req, {"path": sys.path, "executable": sys.executable, "prefix": sys.prefix,
                       "version": sys.version})


def write_flush0(req):
    req.content_type = "text/plain"
    for i in range(1000):
        req.write(b"%04d\n" % i, 0)
    return apache.OK


def write_str(req):
    req.content_type = "text/plain; charset=utf-8"
    req.write("héllo")
    return apache.OK


def write_bad_type(req):
    req.write(12345)
    return apache.OK


def redirect(req):
    req.internal_redirect("/hello")
    return apache.OK


def cleanup(req):
    def done(data):
        apache.log_error("cleanup-ran " + data, apache.APLOG_NOTICE)
    req.register_cleanup(done, "with-data")
    return _send(req, b"ok")


def sendfile(req):
    req.content_type = "application/octet-stream"
    req.sendfile(req.get_options()["file"])
    return apache.OK


def attr(req):
    req.custom = "stored"
    return _send(req, req.custom.encode())


def readonly(req):
    try:
        req.method = "PUT"
        return _send(req, b"no error")
    except AttributeError as e:
        return _send(req, ("AttributeError " + str(e)).encode())


class Obj:
    def method(self, req):
        return _send(req, b"dotted")


obj = Obj()


def server_return_bad(req):
    raise apache.SERVER_RETURN(12345)


def read_then_write(req):
    try:
        req.read()
    except OSError as e:
        apache.log_error("read failed: %s" % e)
        req.write(b"JUNK AFTER ERROR")
        raise
    return _send(req, b"read ok")


def mpm(req):
    return _send(req, {"threaded": apache.mpm_query(apache.AP_MPMQ_IS_THREADED),
                       "alias": apache.mpm_query("is_threaded")})
