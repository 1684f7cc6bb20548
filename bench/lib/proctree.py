"""CPU, memory and page faults of a server's whole process tree, read from /proc.

A server's cost per request is what its root process and every descendant (Apache parent,
children, daemon processes) spent, so the tree is walked afresh at every sample: children that
start or exit mid-run are counted while alive (utime/stime of a process that exited are lost
unless its parent waited for it; Apache children live for the whole run here,
MaxConnectionsPerChild 0).

    python3 proctree.py PID          -> "nproc rss_kib pss_kib cpu_ticks minflt"
    python3 proctree.py PID --pids   -> the PIDs of the tree
"""
from __future__ import annotations

import os
import sys
from dataclasses import dataclass

CLK_TCK: int = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Sample:
    nproc: int
    rss_kib: int  # summed over processes (shared pages counted once per process)
    pss_kib: int  # proportional set size: shared pages split between their users
    cpu_ticks: int  # utime + stime, clock ticks (CLK_TCK per second)
    minflt: int  # minor page faults

    @property
    def cpu_s(self) -> float:
        return self.cpu_ticks / CLK_TCK


def _stat_fields(pid: int) -> list[str] | None:
    """Fields of /proc/PID/stat after the command name (field 3, state, is index 0)."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def pids(root: int) -> list[int]:
    """root and all its descendants (empty if root is gone)."""
    children: dict[int, list[int]] = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            f = _stat_fields(int(d))
            if f is not None:
                children.setdefault(int(f[1]), []).append(int(d))
    if not os.path.exists(f"/proc/{root}"):
        return []
    out: list[int] = []
    todo = [root]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def _kib(path: str, key: str) -> int:
    try:
        with open(path) as fh:
            for line in fh:
                if line.startswith(key):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def sample(root: int, memory: bool = True) -> Sample:
    """One sample of the tree under root. memory=False skips RSS/PSS (cheaper, for CPU deltas)."""
    tree = pids(root)
    rss = pss = cpu = flt = 0
    for p in tree:
        f = _stat_fields(p)
        if f is None:
            continue
        cpu += int(f[11]) + int(f[12])  # utime, stime
        flt += int(f[7])  # minflt
        if memory:
            rss += _kib(f"/proc/{p}/status", "VmRSS:")
            pss += _kib(f"/proc/{p}/smaps_rollup", "Pss:")
    return Sample(len(tree), rss, pss, cpu, flt)


def machine_busy_ticks() -> int:
    """user+nice+system+irq+softirq ticks of all CPUs (first line of /proc/stat)."""
    with open("/proc/stat") as fh:
        f = fh.readline().split()
    return int(f[1]) + int(f[2]) + int(f[3]) + int(f[6]) + int(f[7])


if __name__ == "__main__":
    root_pid = int(sys.argv[1])
    if "--pids" in sys.argv[2:]:
        print(" ".join(map(str, pids(root_pid))))
    else:
        s = sample(root_pid)
        print(s.nproc, s.rss_kib, s.pss_kib, s.cpu_ticks, s.minflt)
