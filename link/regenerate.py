#!/usr/bin/env python3
"""Regenerates link/render.order, the order in which the linker lays out kflex's functions.

Why: `kflex render` runs once per Argo CD refresh, and its peak memory is mostly the binary's
code the kernel maps in 64 KiB blocks around each function it runs. Placing every function a
render runs side by side (build.rs hands this file to the linker) keeps those blocks few:
issue 14's target is a peak under 10 MiB.

The names are the mangled symbols callgrind saw run, in first-run order, while rendering every
acceptance ControlPlane; symbols that later vanish or get renamed are skipped by the linker, so a
stale file only costs memory (benches/process.rs prints the peak with met/MISSED). Regenerate
after a version bump (it renames every kflex symbol) or when that benchmark says MISSED:

    python3 link/regenerate.py        # needs valgrind and nm
"""

import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BINARY = ROOT / "target" / "release" / "kflex"
ORDER = ROOT / "link" / "render.order"
ACCEPTANCE = ROOT / "tests" / "acceptance"
# Every acceptance ControlPlane renders with the acceptance hooks beside it (unused ones are fine).
HOOKS = ["-f", str(ACCEPTANCE / "hook-hello.yaml"), "-f", str(ACCEPTANCE / "hook-kubectl-check.yaml")]

# What Argo CD, Flux and a person run: the embedded default and every acceptance input.
RUNS = [["render", "cp1"], ["--version"]] + [
    ["render", "-f", str(path), *HOOKS]
    for path in sorted(ACCEPTANCE.glob("cp-*.yaml"))
]

FUNCTION = re.compile(r"^c?fn=\(\d+\) (.+)$")


def run_functions(args, out):
    """The functions one kflex run executes, in the order callgrind first names them."""
    subprocess.run(
        ["valgrind", "--tool=callgrind", "--demangle=no", f"--callgrind-out-file={out}",
         str(BINARY), *args],
        check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    with open(out, encoding="utf-8") as profile:
        return [m.group(1).strip() for line in profile if (m := FUNCTION.match(line))]


# Cargo's bench profile names kflex's own symbols differently from the release profile (the
# profile is part of each crate's hash), and both build target/release/kflex: the order holds the
# names of both, so the shipped binary and the one benches/process.rs measures are laid out alike.
# Release is built last, so that is what target/release/kflex is afterwards.
BUILDS = [
    ["cargo", "bench", "--locked", "--no-run", "--bench", "process"],
    ["cargo", "build", "--release", "--locked", "--bin", "kflex"],
]


def main():
    order, seen = [], set()
    for build in BUILDS:
        subprocess.run(build, cwd=ROOT, check=True)
        nm = subprocess.run(["nm", "--defined-only", str(BINARY)], check=True, capture_output=True, text=True)
        defined = {line.split()[-1] for line in nm.stdout.splitlines() if line.strip()}
        with tempfile.TemporaryDirectory() as scratch:
            for number, args in enumerate(RUNS):
                for name in run_functions(args, Path(scratch) / f"run{number}.out"):
                    if name in defined and name not in seen:
                        seen.add(name)
                        order.append(name)
    # In the order they first ran, not sorted: sorted, the same functions made a render's peak
    # 0.8 MiB larger (8.0 against 7.2 MiB, benches/process.rs on 2026-12-04).
    ORDER.write_text("".join(f"{name}\n" for name in order), encoding="utf-8")
    print(f"{ORDER.relative_to(ROOT)}: {len(order)} functions", file=sys.stderr)


if __name__ == "__main__":
    main()
