#!/usr/bin/env bash
# Builds, serves and tests agegender. Every tool it needs is installed here, from the package
# registries only (crates.io, npm, Debian apt), so a clean clone needs nothing installed by hand.
#
#   ./build.sh              build the wasm module and the page into www/pkg
#   ./build.sh serve [PORT] build, then serve www/ on http://127.0.0.1:PORT/ (default 8000)
#   ./build.sh test         every test: native, fmt, clippy, browser (wasm-pack) and end-to-end
#   ./build.sh test-web     the browser (wasm-pack) tests alone
#
# Environment: AGEGENDER_DATA (data folder for the tests that need photos), CARGO_TARGET_DIR,
# WASM_TARGET_DIR (target folder for the wasm builds only; defaults to CARGO_TARGET_DIR).
set -euo pipefail
cd "$(dirname "$0")"

WASM_TARGET=wasm32-unknown-unknown
# Chromium is the only browser the tests use; the network is closed, so it must not phone home.
CHROMIUM=/usr/bin/chromium
CHROMEDRIVER_BIN=/usr/bin/chromedriver

# Each step says when it starts, in seconds since the script began, so a CI log shows where the time goes.
say() { printf '\n==> [%ss] %s\n' "$SECONDS" "$*" >&2; }

as_root() {
    if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi
}

# The version of CRATE that Cargo.lock holds (for wasm-bindgen, the one the CLI must match exactly).
locked_version() {
    awk -v name="name = \"$1\"" '$0 == name { getline; gsub(/"/, "", $3); print $3; exit }' Cargo.lock
}

ensure_apt() {
    local missing=()
    for pkg in "$@"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' \
            || missing+=("$pkg")
    done
    if [ ${#missing[@]} -gt 0 ]; then
        say "apt-get install ${missing[*]}"
        as_root apt-get update
        as_root env DEBIAN_FRONTEND=noninteractive \
            apt-get install -y --no-install-recommends "${missing[@]}"
    fi
}

ensure_wasm_tools() {
    rustup target list --installed | grep -qx "$WASM_TARGET" || rustup target add "$WASM_TARGET"

    local want have
    want=$(locked_version wasm-bindgen)
    have=$(wasm-bindgen --version 2>/dev/null | awk '{ print $2 }' || true)
    if [ "$have" != "$want" ]; then
        say "cargo install wasm-bindgen-cli $want (found: ${have:-none})"
        # --locked first. The registry mirror here lacks a crate version that the CLI's own lock
        # file names (webpki-roots 1.0.11, in the test runner's HTTP client); fall back to a fresh
        # resolution within the CLI's semver ranges rather than fail the build.
        cargo install --locked wasm-bindgen-cli --version "$want" \
            || cargo install --force wasm-bindgen-cli --version "$want"
    fi
    command -v wasm-pack >/dev/null || { say "cargo install wasm-pack"; cargo install --locked wasm-pack; }
    # wasm-opt is off (see Cargo.toml, measured), so Debian's binaryen is not needed; with
    # --mode no-install wasm-pack never downloads tools of its own.
}

ensure_browser() {
    ensure_apt chromium chromium-driver
}

ensure_node() {
    command -v npm >/dev/null || ensure_apt nodejs npm
    if [ ! -d tests/e2e/node_modules ] || [ tests/e2e/package-lock.json -nt tests/e2e/node_modules ]; then
        say "npm ci (tests/e2e)"
        (cd tests/e2e && npm ci --no-audit --no-fund)
        touch tests/e2e/node_modules
    fi
}

# The page's module links three tract crates narrowed to what our two models run
# (tools/lean-tract/README.md): copies of their crates.io sources at the locked versions, with
# the patches in tools/lean-tract/ applied, made once into the target folder. After lean_tract,
# the wasm steps pass LEAN_TRACT (cargo --config arguments) to build against them; native builds
# use tract as published.
LEAN_TRACT=()
lean_tract() {
    if [ ${#LEAN_TRACT[@]} -gt 0 ]; then return; fi
    command -v patch >/dev/null || ensure_apt patch
    local dir crate ver src dst stamp
    dir="$(realpath -m "${WASM_TARGET_DIR:-${CARGO_TARGET_DIR:-target}}")/lean-tract"
    # Puts the locked versions' sources under the registry folder.
    cargo fetch --locked --quiet
    for crate in tract-data tract-core tract-linalg; do
        ver=$(locked_version "$crate")
        dst="$dir/$crate"
        stamp="$ver $(sha256sum <"tools/lean-tract/$crate.patch" | cut -c1-16)"
        if [ "$(cat "$dst/.lean-tract" 2>/dev/null)" != "$stamp" ]; then
            src=$(find "${CARGO_HOME:-$HOME/.cargo}/registry/src" -mindepth 2 -maxdepth 2 \
                -type d -name "$crate-$ver" | head -n 1)
            [ -n "$src" ] || { echo "no crates.io source of $crate $ver" >&2; exit 1; }
            say "lean tract: $crate $ver + tools/lean-tract/$crate.patch"
            rm -rf "$dst"
            mkdir -p "$dir"
            cp -r "$src" "$dst"
            patch -p1 --batch --quiet -d "$dst" -i "$PWD/tools/lean-tract/$crate.patch"
            echo "$stamp" >"$dst/.lean-tract"
        fi
        LEAN_TRACT+=(--config "patch.crates-io.$crate.path=\"$dst\"")
    done
}

# Runs a cargo command against the lean tract. Cargo writes a [patch] into Cargo.lock; the
# committed lock names crates.io's tract, so it is put back afterwards.
# (A trap puts it back too when the script is interrupted.)
with_lean_tract() {
    local rc=0
    LOCK_SAVED=$(mktemp)
    cp Cargo.lock "$LOCK_SAVED"
    trap 'cp "$LOCK_SAVED" Cargo.lock; rm -f "$LOCK_SAVED"' EXIT
    trap 'exit 130' INT TERM
    "$@" || rc=$?
    cp "$LOCK_SAVED" Cargo.lock
    rm -f "$LOCK_SAVED"
    trap - EXIT INT TERM
    return "$rc"
}

# The wasm steps may use their own target folder, so they do not evict native build artefacts.
wasm_env() {
    if [ -n "${WASM_TARGET_DIR:-}" ]; then
        CARGO_TARGET_DIR="$WASM_TARGET_DIR" "$@"
    else
        "$@"
    fi
}

build() {
    ensure_wasm_tools
    lean_tract
    say "wasm-pack build (profile wasm: release, dependencies for size) -> www/pkg"
    with_lean_tract wasm_env wasm-pack build --mode no-install --profile wasm --target web \
        --no-typescript --no-pack --out-dir www/pkg . -- "${LEAN_TRACT[@]}"
    wasm_size "wasm size" www/pkg/agegender_bg.wasm

    # The same crate with relaxed SIMD: tract's matrix kernels use fused multiply-adds (about 0.9x
    # the time per photo, bench/ANALYSIS.md). A module with relaxed-simd instructions does not load
    # where the browser lacks them, so it is a second file that www/worker.js picks at run time.
    # Its own target folder: other RUSTFLAGS would rebuild (and evict) the plain build's crates.
    say "wasm-pack build with +relaxed-simd -> www/pkg/agegender_relaxed_bg.wasm"
    local out
    out=$(mktemp -d)
    CARGO_TARGET_DIR="${WASM_TARGET_DIR:-${CARGO_TARGET_DIR:-target}}/relaxed-simd" \
        RUSTFLAGS="-C target-feature=+simd128,+relaxed-simd" \
        with_lean_tract wasm-pack build --mode no-install --profile wasm --target web \
        --no-typescript --no-pack --out-dir "$out" . -- "${LEAN_TRACT[@]}"
    # One glue script serves both modules: they must import and export the same things.
    if ! cmp -s "$out/agegender.js" www/pkg/agegender.js; then
        echo "the relaxed-simd build's agegender.js differs from the plain build's" >&2
        exit 1
    fi
    mv "$out/agegender_bg.wasm" www/pkg/agegender_relaxed_bg.wasm
    rm -rf "$out"
    wasm_size "relaxed-simd wasm size" www/pkg/agegender_relaxed_bg.wasm
}

# "LABEL: N bytes raw, M bytes gzip -9" for a built module.
wasm_size() {
    printf '%s: %s bytes raw, %s bytes gzip -9\n' "$1" "$(wc -c <"$2")" "$(gzip -9 -c "$2" | wc -c)" >&2
}

serve() {
    build
    command -v python3 >/dev/null || ensure_apt python3
    exec python3 tools/serve.py --port "${1:-8000}"
}

# The browser tests alone (a part of run_tests).
web_tests() {
    # Debug build with optimised dependencies (see Cargo.toml); model loading takes a while there.
    # Only tests/web.rs and tests/web_bad_input.rs run in the browser (the other test files are
    # native-only; examples too).
    WASM_BINDGEN_TEST_TIMEOUT="${WASM_BINDGEN_TEST_TIMEOUT:-600}" CHROMEDRIVER="$CHROMEDRIVER_BIN" \
        with_lean_tract wasm_env wasm-pack test --headless --chrome --mode no-install -- \
        --test web --test web_bad_input "${LEAN_TRACT[@]}"
}

run_tests() {
    ensure_wasm_tools
    ensure_browser
    ensure_node
    lean_tract

    say "cargo fmt --check"
    cargo fmt --all -- --check

    say "cargo clippy (native and wasm32)"
    cargo clippy --workspace --all-targets -- -D warnings
    # The library and the tests (examples are native command-line tools).
    wasm_env cargo clippy --target "$WASM_TARGET" --lib --tests -- -D warnings

    say "cargo test --workspace (native; AGEGENDER_DATA=${AGEGENDER_DATA:-unset})"
    cargo test --workspace

    say "wasm-pack test --headless --chrome (browser tests, lean tract)"
    web_tests

    build

    say "end-to-end test (playwright-core + Debian chromium)"
    CHROMIUM="$CHROMIUM" node tests/e2e/e2e.mjs
    say "all tests passed"
}

case "${1:-build}" in
    build) build ;;
    serve) shift; serve "$@" ;;
    test) run_tests ;;
    test-web) ensure_wasm_tools; ensure_browser; lean_tract; web_tests ;;
    *) echo "usage: $0 [build|serve [PORT]|test|test-web]" >&2; exit 2 ;;
esac
