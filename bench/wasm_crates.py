#!/usr/bin/env python3
"""Where a wasm module's bytes are, by crate: `twiggy top` of a build with its names kept, each
function counted under the first path segment of its name (so generic code counts where its path
puts it: `core`/`alloc` hold much that tract instantiates). Names and debug sections are left out.

    CARGO_PROFILE_WASM_STRIP=none cargo build --profile wasm --target wasm32-unknown-unknown --lib
    python3 bench/wasm_crates.py target/wasm32-unknown-unknown/wasm/agegender.wasm [BASELINE.wasm]

With a second module, a column for it and the difference (a Markdown table either way).
Needs twiggy (`cargo install twiggy`)."""
import csv
import io
import re
import subprocess
import sys
from collections import defaultdict

GROUPS = {
    "tract_core": "tract-core", "tract_linalg": "tract-linalg", "tract_data": "tract-data",
    "core": "core/alloc/std", "alloc": "core/alloc/std", "std": "core/alloc/std",
    "serde": "serde family", "serde_core": "serde family", "serde_json": "serde family",
    "erased_serde": "serde family", "serde_wasm_bindgen": "serde family",
    "agegender": "our crates", "graph": "our crates",
    "smallvec": "smallvec, hashbrown, itertools, anyhow", "hashbrown": "smallvec, hashbrown, itertools, anyhow",
    "tract_itertools": "smallvec, hashbrown, itertools, anyhow", "itertools": "smallvec, hashbrown, itertools, anyhow",
    "anyhow": "smallvec, hashbrown, itertools, anyhow",
    "ndarray": "ndarray",
}


def by_crate(path):
    out = subprocess.run(["twiggy", "top", "-n", "10000000", "--format", "csv", path],
                         check=True, capture_output=True, text=True).stdout
    sizes = defaultdict(int)
    for row in csv.DictReader(io.StringIO(out)):
        name, size = row["Name"], int(row["ShallowSize"])
        if "custom section" in name or name.startswith('"function names"'):
            continue  # names, debug info, wasm-bindgen's descriptors: not shipped
        if name.startswith("data segment") or name.startswith("data["):
            sizes["data (the graph files, constants)"] += size
            continue
        m = re.search(r"([A-Za-z_][A-Za-z0-9_]*)::", name)
        sizes[GROUPS.get(m.group(1), "other") if m else "other"] += size
    return sizes


def main():
    now = by_crate(sys.argv[1])
    base = by_crate(sys.argv[2]) if len(sys.argv) > 2 else None
    keys = sorted(set(now) | set(base or {}), key=lambda k: -max(now.get(k, 0), (base or {}).get(k, 0)))
    kb = lambda v: f"{v / 1000:,.0f}"
    if base:
        print("| part | before, raw KB | after, raw KB | change |\n|---|---:|---:|---:|")
        for k in keys:
            print(f"| {k} | {kb(base.get(k, 0))} | {kb(now.get(k, 0))} | {kb(now.get(k, 0) - base.get(k, 0))} |")
        print(f"| total | {kb(sum(base.values()))} | {kb(sum(now.values()))} | {kb(sum(now.values()) - sum(base.values()))} |")
    else:
        total = sum(now.values())
        print("| part | raw KB | share |\n|---|---:|---:|")
        for k in keys:
            print(f"| {k} | {kb(now[k])} | {100 * now[k] / total:.1f}% |")
        print(f"| total | {kb(total)} | |")


if __name__ == "__main__":
    main()
