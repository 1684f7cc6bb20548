#!/usr/bin/env bash
# bench/run.sh -- mod_py against mod_python and a C handler, side by side, in one run.
#
# Every system gets its own Apache (own ServerRoot in a temp dir, port, error log; mpm_event
# 2 processes x 8 threads; no access log); every response is checked byte for byte, then wrk
# measures hello (GET 14 B), get_64k (GET 64 KiB) and post_echo_1m (POST 1 MiB echoed back).
# Prints one table and writes bench/results/<stamp>.tsv (+ .log, not committed).
#
# Usage:  scripts/setup (builds mod_py and modpy._native) && bench/run.sh
#         SYSTEMS="mod_python modpy_handler" DUR=5 bench/run.sh
# Env:    DUR=10 WARM=3            measured / warm-up seconds per scenario
#         CONNS=16 THREADS=2       wrk connections / threads (16 = the 16 worker threads)
#         MPM=event|worker|prefork (event, worker: 2x8 threads; prefork: 16 processes)
#         SYSTEMS="apache_c mod_python modpy_handler modpy_brigade wsgi_embedded modpy_wsgi static"
#         PIN=0|1                  1: server on CPU 1, wrk on CPU 0
#         SCHED=other|batch        batch: every server runs under SCHED_BATCH (chrt --batch,
#                                  as systemd's CPUSchedulingPolicy=batch): no wake-up
#                                  preemption between Apache's threads and daemon workers
#         MODPY_SO=target/release/libmod_py.so   WSGI_SO=/usr/lib/apache2/modules/mod_wsgi.so
#         QUIET=10 QUIET_MAX=120   before each measurement wait (at most 120 s) until the
#                                  machine is <= 10% busy (shared machines; default 0: off)
#         ROUNDS=1                 N > 1: every system N times, in alternating order (A B C,
#                                  C B A, ...); RESULTS/<stamp>-rK.tsv per round, and
#                                  <stamp>.tsv keeps per row the round with the median req/s,
#                                  with the median CPU us/req (noisy shared machines)
#         RESULTS=bench/results    KEEP=1 keeps the temp run directory
# Report of saved runs:  python3 bench/lib/report.py bench/results/A.tsv bench/results/B.tsv
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(dirname "$HERE")
export SYSTEMS=${SYSTEMS:-"apache_c mod_python modpy_handler modpy_brigade wsgi_embedded modpy_wsgi static"}
export MODPY_SO=${MODPY_SO:-$REPO/target/release/libmod_py.so}
export WSGI_SO=${WSGI_SO:-/usr/lib/apache2/modules/mod_wsgi.so}
MODS=/usr/lib/apache2/modules

missing=()   # "what it is -> apt package"
need() { [ -e "$1" ] || missing+=("$1 -> apt-get install $2"); }
has() { case " $SYSTEMS " in *" $1 "*) return 0 ;; *) return 1 ;; esac; }
has_modpy() { case " $SYSTEMS " in *" modpy_"*) return 0 ;; *) return 1 ;; esac; }

command -v wrk > /dev/null || missing+=("wrk -> apt-get install wrk")
command -v apache2 > /dev/null || [ -x /usr/sbin/apache2 ] || missing+=("apache2 -> apt-get install apache2")
PY=/usr/bin/python3; [ -x "$PY" ] || PY=$(command -v python3 || true)
[ -n "$PY" ] || missing+=("python3 -> apt-get install python3")
need "$MODS/mod_mpm_${MPM:-event}.so" apache2
has apache_c && { command -v apxs > /dev/null || missing+=("apxs (to build the C handler) -> apt-get install apache2-dev"); }
has mod_python && need "$MODS/mod_python.so" libapache2-mod-python
has wsgi_embedded && need "$WSGI_SO" libapache2-mod-wsgi-py3
if has_modpy && [ ! -f "$MODPY_SO" ]; then
  echo "bench: $MODPY_SO not found: run 'cargo build --release' in $REPO first (or set MODPY_SO)" >&2
  exit 2
fi
if case " $SYSTEMS " in *" modpy_daemon"*) true ;; *) false ;; esac \
   && [ ! -f "$REPO/pylib/modpy/_native.abi3.so" ]; then
  echo "bench: note: pylib/modpy/_native.abi3.so not built (scripts/setup builds it): daemon workers run the pure-Python loop" >&2
fi
if [ ${#missing[@]} -gt 0 ]; then
  echo "bench: missing tools/modules for SYSTEMS=\"$SYSTEMS\":" >&2
  printf '  %s\n' "${missing[@]}" >&2
  echo "  (all at once: apt-get install wrk apache2 apache2-dev libapache2-mod-python libapache2-mod-wsgi-py3;" >&2
  echo "   or leave a system out: SYSTEMS=\"...\")" >&2
  exit 2
fi
if has_modpy && [ -n "$(find "$REPO/src" "$REPO/bindings" -newer "$MODPY_SO" -name '*.rs' -o -newer "$MODPY_SO" -name '*.c' 2>/dev/null | head -1)" ]; then
  echo "bench: note: sources are newer than $MODPY_SO (cargo build --release?)" >&2
fi

exec "$PY" "$HERE/lib/bench.py"
