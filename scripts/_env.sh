# Sourced by scripts/setup, scripts/serve and scripts/test: paths and environment they share.
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PY=/usr/bin/python3            # Debian's Python: what mod_py links against and .venv is built on
VENV=$ROOT/.venv
# mod_py links against Debian's Python even when PATH leads to pyenv or a venv (.cargo/config.toml
# says the same; this also covers tools that read the variable directly).
export PYO3_PYTHON=${PYO3_PYTHON:-$PY}
# rustup's default location, for shells that did not source ~/.cargo/env
if ! command -v cargo >/dev/null && [ -x "$HOME/.cargo/bin/cargo" ]; then
  export PATH=$HOME/.cargo/bin:$PATH
fi
# cargo's own home (registry, git checkouts) must be writable; the toolchain may be lent read-only.
_ch=${CARGO_HOME:-$HOME/.cargo}
if ! { mkdir -p "$_ch" 2>/dev/null && [ -w "$_ch" ]; }; then
  export CARGO_HOME=$ROOT/.cargo-home
fi
unset _ch
# where cargo puts libmod_py.so (honours CARGO_TARGET_DIR); the test harness reads MODPY_SO
export MODPY_SO=${MODPY_SO:-${CARGO_TARGET_DIR:-$ROOT/target}/release/libmod_py.so}
