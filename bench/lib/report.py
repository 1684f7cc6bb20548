"""Tables from bench/ result files.

    python3 bench/lib/report.py bench/results/A.tsv [B.tsv ...]

One file: its table, then mod_py against the others: modpy_handler vs mod_python and apache_c,
modpy_wsgi vs wsgi_embedded and apache_c.
Several files: each table, then req/s, CPU us/req and those ratios side by side.

Columns (TSV name -> table heading):
  req_s        req/s       wrk requests / wrk duration
  (computed)   xC          req/s of this row / req/s of apache_c for the same scenario
  p50_ms/p99_ms            wrk latency percentiles
  err_socket   err         wrk connect+read+write+timeout errors "+" responses with status > 399
  err_status
  cpu_us_req   CPU us/req  CPU time (utime+stime) of the server's whole process tree during the
                           measured run / requests; wrk excluded
  (computed)   CPUxC       CPU us/req of this row / that of apache_c
  minflt_req   flt/req     minor page faults of the server tree per request
  nproc, rss_mib, pss_mib  processes, RSS and PSS summed over the tree, sampled mid-run
                           ('idle' rows: just after start, before any request)
  other_cpu_pct other%     CPU used by neither the server nor wrk during the run, % of all CPUs
                           (a noise check: more than a few % means something else was running)
  requests, wrk_cpu_pct    requests measured; wrk's own CPU, % of all CPUs
"""
from __future__ import annotations

import statistics
import sys
from dataclasses import dataclass
from pathlib import Path

COLUMNS: list[str] = [
    "system", "scenario", "req_s", "p50_ms", "p99_ms", "err_socket", "err_status", "cpu_us_req",
    "minflt_req", "nproc", "rss_mib", "pss_mib", "other_cpu_pct", "requests", "wrk_cpu_pct",
]
# mod_py's systems and what each is compared with (ratio tables under the main table)
COMPARISONS: list[tuple[str, tuple[str, ...]]] = [
    ("modpy_handler", ("mod_python", "apache_c")),
    ("modpy_brigade", ("mod_python", "apache_c")),
    ("modpy_wsgi", ("wsgi_embedded", "apache_c")),
]


@dataclass
class Run:
    path: Path
    meta: list[str]
    rows: list[dict[str, str]]

    def get(self, system: str, scenario: str, col: str) -> float | None:
        for r in self.rows:
            if r["system"] == system and r["scenario"] == scenario:
                return num(r.get(col, "-"))
        return None


def num(x: str) -> float | None:
    try:
        return float(x)
    except ValueError:
        return None


def load(path: Path | str) -> Run:
    meta: list[str] = []
    rows: list[dict[str, str]] = []
    with open(path) as fh:
        for line in fh:
            line = line.rstrip("\n")
            if line.startswith("#"):
                meta.append(line)
            elif line and not line.startswith("system\t"):
                f = line.split("\t")
                rows.append(dict(zip(COLUMNS, f + ["-"] * (len(COLUMNS) - len(f)))))
    return Run(Path(path), meta, rows)


def ratio(a: float | None, b: float | None, fmt: str = "{:.2f}") -> str:
    return fmt.format(a / b) if a and b else "-"


def table(header: list[str], body: list[list[str]], left: int = 2) -> str:
    w = [max(len(r[i]) for r in [header, *body]) for i in range(len(header))]
    out = []
    for r in [header, ["-" * x for x in w], *body]:
        out.append("  ".join(c.ljust(w[i]) if i < left else c.rjust(w[i]) for i, c in enumerate(r)).rstrip())
    return "\n".join(out)


def main_table(run: Run) -> str:
    hdr = ["system", "scenario", "req/s", "xC", "p50 ms", "p99 ms", "err", "CPU us/req", "CPUxC",
           "flt/req", "procs", "RSS MiB", "PSS MiB", "other%"]
    body = []
    for r in run.rows:
        s, sc = r["system"], r["scenario"]
        rps, cpu = num(r["req_s"]), num(r["cpu_us_req"])
        is_c = s == "apache_c"
        err = "-" if r["err_socket"] == "-" else f"{r['err_socket']}+{r['err_status']}"
        body.append([
            s, sc, r["req_s"], "-" if is_c else ratio(rps, run.get("apache_c", sc, "req_s")),
            r["p50_ms"], r["p99_ms"], err, r["cpu_us_req"],
            "-" if is_c else ratio(cpu, run.get("apache_c", sc, "cpu_us_req")),
            r["minflt_req"], r["nproc"], r["rss_mib"], r["pss_mib"], r["other_cpu_pct"],
        ])
    return table(hdr, body)


def scenarios(run: Run) -> list[str]:
    out: list[str] = []
    for r in run.rows:
        if r["scenario"] not in ("idle", "-") and r["scenario"] not in out:
            out.append(r["scenario"])
    return out


def ratio_table(run: Run, subject: str, baselines: tuple[str, ...]) -> str:
    """subject vs each baseline: req/s ratio (>1 = faster) and CPU us/req ratio (<1 = cheaper)."""
    hdr = ["scenario", f"{subject} req/s"]
    for b in baselines:
        hdr += [f"{b} req/s", f"req/s vs {b}"]
    hdr += [f"{subject} CPU us"]
    for b in baselines:
        hdr += [f"{b} CPU us", f"CPU vs {b}"]
    body = []
    for sc in scenarios(run):
        rps, cpu = run.get(subject, sc, "req_s"), run.get(subject, sc, "cpu_us_req")
        if rps is None:
            continue
        row = [sc, f"{rps:.0f}"]
        for b in baselines:
            brps = run.get(b, sc, "req_s")
            row += [f"{brps:.0f}" if brps else "-", ratio(rps, brps, "{:.3f}")]
        row += [f"{cpu:.1f}" if cpu else "-"]
        for b in baselines:
            bcpu = run.get(b, sc, "cpu_us_req")
            row += [f"{bcpu:.1f}" if bcpu else "-", ratio(cpu, bcpu, "{:.3f}")]
        body.append(row)
    if not body:
        return ""
    return (f"{subject} vs {' and '.join(baselines)} (req/s ratio > 1: faster; CPU ratio < 1: cheaper "
            "per request)\n" + table(hdr, body, left=1))


def render(path: Path | str) -> str:
    run = load(path)
    parts = ["\n".join(run.meta), main_table(run)]
    for subject, baselines in COMPARISONS:
        rt = ratio_table(run, subject, baselines)
        if rt:
            parts.append(rt)
    return "\n\n".join(parts)


def compare(runs: list[Run]) -> str:
    """req/s, CPU us/req and the modpy_handler ratios of several runs side by side."""
    n = range(1, len(runs) + 1)
    keys: list[tuple[str, str]] = []
    for run in runs:
        for r in run.rows:
            k = (r["system"], r["scenario"])
            if r["scenario"] not in ("idle", "-") and k not in keys:
                keys.append(k)
    hdr = (["system", "scenario"] + [f"req/s #{i}" for i in n] + ["median", "spread%"]
           + [f"CPU us #{i}" for i in n] + [f"other% #{i}" for i in n])
    body = []
    for s, sc in keys:
        v = [run.get(s, sc, "req_s") for run in runs]
        ok = [x for x in v if x]
        med = f"{statistics.median(ok):.0f}" if ok else "-"
        spread = f"{100 * (max(ok) - min(ok)) / statistics.mean(ok):.1f}" if len(ok) > 1 else "-"
        cpu = [run.get(s, sc, "cpu_us_req") for run in runs]
        oth = [run.get(s, sc, "other_cpu_pct") for run in runs]
        body.append([s, sc, *(f"{x:.0f}" if x else "-" for x in v), med, spread,
                     *(f"{x:.1f}" if x else "-" for x in cpu), *(f"{x:.0f}" if x is not None else "-" for x in oth)])
    out = ["runs side by side (spread% = (max-min)/mean of req/s)", table(hdr, body)]
    hdr2 = ["scenario", "ratio"] + [f"#{i}" for i in n]
    body2 = []
    for subject, baselines in COMPARISONS:
        for sc in dict.fromkeys(k[1] for k in keys):
            for b in baselines:
                for label, col in (("req/s", "req_s"), ("CPU us/req", "cpu_us_req")):
                    vals = [ratio(run.get(subject, sc, col), run.get(b, sc, col), "{:.3f}") for run in runs]
                    if any(x != "-" for x in vals):
                        body2.append([sc, f"{subject}/{b} {label}", *vals])
    if body2:
        out += ["", "mod_py ratios per run", table(hdr2, body2)]
    return "\n".join(out)


if __name__ == "__main__":
    paths = sys.argv[1:]
    if not paths:
        sys.exit(__doc__)
    for p in paths:
        print(f"\n### {p}\n{render(p)}")
    if len(paths) > 1:
        print("\n### " + compare([load(p) for p in paths]))
