#!/usr/bin/env bash
# Benchmarks agegender against onnxruntime-web, face-api.js, native tract and PyTorch, side by side
# in one run, and writes BENCHMARKS.md. Never a CI test: the machine's noise makes timings flaky.
#
#   ./bench/run.sh            the full run (tens of minutes on a busy 2-core machine)
#   ./bench/run.sh --quick    a smoke run: every measure a couple of times; writes
#                             bench/out/BENCHMARKS-quick.md, never BENCHMARKS.md
#   node bench/run.mjs --report   rewrite BENCHMARKS.md from bench/out/results.json
#
# tractbench depends on the agegender crate by path, so a change in src/ relinks it (LTO: minutes).
#
# Environment: AGEGENDER_DATA (default /work/shared/data; photos/ and utkface/ are used),
# CHROMIUM (default /usr/bin/chromium), BENCH_SKIP (comma list of: browser,native,trainer,torch,utk),
# AGEGENDER_TRAINER (a built trainer binary for the utk section instead of `cargo build -p trainer`).
#
#   BENCH_SKIP=browser,native,trainer,torch ./bench/run.sh   only the UTKFace accuracy comparison
#                             with face-api.js (bench/utk.mjs); the other sections keep their figures
# Everything it runs is niced (nice -n 10): a training run on the same machine keeps priority.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
say() { printf '\n==> %s\n' "$*" >&2; }
NICE="nice -n 10"

# The page's module, built by the project's own build when it is missing.
if [ ! -f www/pkg/agegender_bg.wasm ]; then
    say "www/pkg missing: ./build.sh"
    $NICE ./build.sh
fi

# npm packages, exactly as locked (playwright-core drives Debian's chromium; no browser download).
if [ ! -d bench/node_modules ] || [ bench/package-lock.json -nt bench/node_modules ]; then
    say "npm ci (bench)"
    (cd bench && $NICE npm ci --no-audit --no-fund)
    touch bench/node_modules
fi

skipped() { [[ ",${BENCH_SKIP:-}," == *,$1,* ]]; }

# tractbench (only for the browser and native sections): the same agegender code, native and
# wasm32 (+simd128 from .cargo/config.toml); separate target folders so they never share a lock.
if ! skipped native; then
    say "cargo build tractbench (native, release)"
    (cd bench/tractbench && $NICE cargo build --release --quiet --bin tractbench --target-dir ../target)
fi
if ! skipped browser; then
    say "cargo build tractbench (wasm32, release) + wasm-bindgen"
    (cd bench/tractbench && $NICE cargo build --release --quiet --lib --target wasm32-unknown-unknown \
        --target-dir ../target-wasm)
    $NICE wasm-bindgen --target web --no-typescript --out-dir bench/target-wasm/pkg \
        bench/target-wasm/wasm32-unknown-unknown/release/tractbench.wasm
fi

# PyTorch for the trainer comparison, from PyPI, in bench/.venv (skipped if it cannot be had).
if [[ ",${BENCH_SKIP:-}," != *,torch,* ]] && [ ! -x bench/.venv/bin/python ]; then
    say "python venv + torch (PyPI)"
    if $NICE python3 -m venv bench/.venv \
        && $NICE bench/.venv/bin/pip install --quiet --progress-bar off torch numpy pillow; then :; else
        echo "torch install failed: the PyTorch comparison is skipped" >&2
        rm -rf bench/.venv
    fi
fi

say "benchmarks"
exec $NICE node bench/run.mjs "$@"
