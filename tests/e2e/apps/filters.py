"""Filters and handlers exercised by test_filters.py."""
import json
import os
import time

from modpy import apache
from modpy.apache import Brigade, Bucket


# ---- streaming filter object (mod_python style) ----

def upper(f):
    """mod_python's documentation example."""
    s = f.read()
    while s:
        f.write(s.upper())
        s = f.read()
    if s is None:
        f.close()


def upper_lines(f):
    s = f.readline()
    while s:
        f.write(s.upper())
        s = f.readline()
    if s is None:
        f.close()


def one_read_per_call(f):
    """Reads one small piece per call: the function is called again with the rest."""
    s = f.read(1000)
    if s is None:
        f.close()
    elif s:
        f.write(s.upper())


def counting(f):
    """ctx persists across calls: counts calls and bytes, appends a trailer at EOS."""
    if f.ctx is None:
        f.ctx = {"calls": 0, "bytes": 0}
    f.ctx["calls"] += 1
    s = f.read()
    while s:
        f.ctx["bytes"] += len(s)
        f.write(s)
        s = f.read()
    if s is None:
        f.write(("\n[calls=%d bytes=%d]" % (f.ctx["calls"], f.ctx["bytes"])).encode())
        f.close()


def wrap_chunks(f):
    """Tags every read with its size, keeping chunk boundaries visible (for flush tests)."""
    s = f.read()
    while s:
        f.write(b"<" + s + b">")
        s = f.read()
    if s is None:
        f.close()


def passthrough(f):
    f.pass_on()


def disable_after_first(f):
    s = f.read(5)
    if s:
        f.write(s.upper())
    f.disable()


def raises(f):
    s = f.read()
    if s:
        f.write(s.upper())
    raise ValueError("filter exploded")


def raises_late(f):
    """Passes the first megabyte, then fails: the response must come out truncated."""
    if f.ctx is None:
        f.ctx = 0
    s = f.read()
    while s:
        f.ctx += len(s)
        if f.ctx > 3 * 1024 * 1024:
            raise RuntimeError("filter exploded after %d bytes" % f.ctx)
        f.write(s)
        f.flush()
        s = f.read()
    if s is None:
        f.close()


def returns_str(f):
    s = f.read()
    while s:
        f.write(s)
        s = f.read()
    return "not a status"


def reads_nothing(f):
    return None


def req_info(f):
    """Sees the request: writes its uri and name at EOS."""
    s = f.read()
    while s:
        f.write(s)
        s = f.read()
    if s is None:
        r = f.req
        f.write(json.dumps({"uri": r.uri, "name": f.name, "is_input": f.is_input,
                            "handler": f.handler, "closed": f.closed}).encode())
        f.close()


# ---- brigade API (close to C) ----

def upper_brigade(f):
    """Upper-cases every data bucket; metadata passes in order (mod_case_filter in Python,
    passing each chunk on at once so that memory stays bounded)."""
    out = Brigade(f)
    for b in f.brigade:
        if b.is_metadata:
            b.remove()
            out.append(b)
        else:
            out.append(Bucket.heap(f, b.read().upper()))
            b.delete()
            f.pass_brigade(out)
    f.pass_brigade(out)


def inspect_types(f):
    """Records the bucket types it sees (before reading), passes the brigade untouched."""
    if f.ctx is None:
        f.ctx = []
    for b in f.brigade:
        f.ctx.append([b.type, b.length])
    bb = f.brigade
    if bb.last is not None and bb.last.is_eos:
        eos = bb.last
        eos.insert_before(Bucket.heap(f, ("\n" + json.dumps(f.ctx)).encode()))
    f.pass_brigade(bb)


def split_insert(f):
    """Splits the first data bucket after 5 bytes and inserts markers around the split."""
    bb = f.brigade
    first = bb.first
    if first is not None and not first.is_metadata and f.ctx is None:
        f.ctx = True
        first.read()
        if first.length > 5:
            rest = first.split(5)
            rest.insert_before(Bucket.heap(f, b"|SPLIT|"))
        first.insert_before(Bucket.heap(f, b"[start]"))
    f.pass_brigade(bb)


def kept_bucket(f):
    """Keeps a Bucket object past its call: using it later must fail cleanly."""
    import builtins
    old = getattr(builtins, "_modpy_kept", None)
    msg = b""
    if old is not None:
        try:
            old.read()
            msg = b"[old bucket readable!]"
        except RuntimeError as e:
            msg = b"[old bucket: RuntimeError]"
    bb = f.brigade
    builtins._modpy_kept = bb.first
    if bb.last is not None and bb.last.is_eos:
        bb.last.insert_before(Bucket.heap(f, msg))
    f.pass_brigade(bb)


def delayed(f):
    """Keeps data in a brigade (in ctx) across calls, releases it all at EOS (setaside)."""
    if f.ctx is None:
        f.ctx = Brigade(f)
    held = f.ctx
    bb = f.brigade
    seen_eos = False
    for b in bb:
        if b.is_eos:
            seen_eos = True
            break
        if b.is_flush:
            b.delete()
            continue
        b.remove()
        held.append(b)
    if seen_eos:
        held.concat(bb)
        f.pass_brigade(held)


# ---- input filters ----

def upper_in(f):
    s = f.read()
    while s:
        f.write(s.upper())
        s = f.read()
    if s is None:
        f.close()


def count_in(f):
    """Input filter: appends a trailer with the byte count at EOS (changes the length)."""
    if f.ctx is None:
        f.ctx = 0
    s = f.read()
    while s:
        f.ctx += len(s)
        f.write(s)
        s = f.read()
    if s is None:
        f.write(b"[%d]" % f.ctx)
        f.close()


def raises_in(f):
    s = f.read()
    raise KeyError("input filter exploded")


def upper_in_brigade(f):
    """Input filter with the brigade API."""
    got = f.get_brigade(f.mode, f.block, f.readbytes)
    out = f.brigade
    for b in got:
        if b.is_metadata:
            b.remove()
            out.append(b)
        else:
            out.append(Bucket.heap(f, b.read().upper()))
    got.cleanup()
    return apache.OK


# ---- handlers ----

def hello(req):
    req.content_type = "text/plain"
    req.write(b"hello world\n")
    return apache.OK


def stream(req):
    """Many small flushed chunks, as a proxied streaming response."""
    req.content_type = "text/plain"
    n = int(req.args or "100")
    for i in range(n):
        req.write(b"chunk %05d\n" % i)
    return apache.OK


def slow_stream(req):
    req.content_type = "text/plain"
    for i in range(5):
        req.write(b"tick %d\n" % i)
        time.sleep(0.3)
    return apache.OK


def echo(req):
    req.content_type = "application/octet-stream"
    req.write(req.read())
    return apache.OK


def count_body(req):
    """Reads the body in chunks; reports size, a checksum and the child's RSS."""
    import hashlib
    h = hashlib.md5()
    total = 0
    start = _rss()
    peak = start
    while True:
        s = req.read(1 << 20)
        if not s:
            break
        total += len(s)
        h.update(s)
        if total % (64 << 20) < len(s):
            peak = max(peak, _rss())
    peak = max(peak, _rss())
    req.content_type = "application/json"
    req.write(json.dumps({"total": total, "md5": h.hexdigest(), "start": start, "peak": peak}).encode())
    return apache.OK


def rss(req):
    req.content_type = "text/plain"
    req.write(b"%d %d" % (os.getpid(), _rss()))
    return apache.OK


def big(req):
    """Writes `args` MiB through the filters."""
    req.content_type = "text/plain"
    n = int(req.args or "1")
    chunk = b"abcdefghijklmnopqrstuvwxyz012345" * 32768  # 1 MiB
    for _ in range(n):
        req.write(chunk)
    return apache.OK


def _rss():
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def api_names(req):
    """Public names of the filter classes and the filter constants, for the stub check."""
    from modpy.apache import APRError, Connection, Filter
    out = {c.__name__: sorted(n for n in dir(c) if not n.startswith("_")) for c in (Filter, Brigade, Bucket, Connection)}
    out["constants"] = sorted(n for n in dir(apache) if n.startswith(("AP_MODE_", "APR_", "AP_FTYPE_", "AP_FILTER_", "AP_NOBODY_")))
    out["APRError"] = [c.__name__ for c in APRError.__mro__]
    req.content_type = "application/json"
    req.write(json.dumps(out).encode())
    return apache.OK


def collect(f):
    """Brigade API: holds everything (setaside across calls) until EOS, then flattens it."""
    if f.ctx is None:
        f.ctx = {"held": Brigade(f), "types": []}
    held = f.ctx["held"]
    bb = f.brigade
    f.ctx["types"] += [b.type for b in bb]
    eos = bb.last is not None and bb.last.is_eos
    held.concat(bb)
    if eos:
        n = held.length()
        data = held.read()
        held.cleanup()
        out = Brigade(f)
        out.append(Bucket.heap(f, data.upper() + b"[%d %s]" % (n, ",".join(f.ctx["types"]).encode())))
        out.append(Bucket.eos(f))
        f.pass_brigade(out)


def hello_buffered(req):
    """Writes with flush=0: the output reaches the filters only after the handler returns."""
    req.content_type = "text/plain"
    req.write(b"hello ", 0)
    req.write(b"world\n", 0)
    return apache.OK


def hello_ignores_errors(req):
    """Carries on (and returns OK) whatever its writes raise."""
    req.content_type = "text/plain"
    try:
        req.write(b"hello world\n")
    except IOError:
        pass
    return apache.OK


_cycle_refs = []


def cyclic(f):
    """Makes reference cycles through ctx and the instance dict (collected by the GC)."""
    import weakref
    if f.ctx is None:
        f.ctx = {"self": f}
        f.ctx["list"] = [f]
        _cycle_refs.append(weakref.ref(f))
    f.pass_on()


def gc_check(req):
    import gc
    gc.collect()
    alive = sum(1 for r in _cycle_refs if r() is not None)
    req.content_type = "text/plain"
    req.write(b"%d %d" % (len(_cycle_refs), alive))
    return apache.OK
