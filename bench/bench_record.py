#!/usr/bin/env python
"""The download record's cost per saved file as a folder fills: N saves of one file each into one folder
(what a recipe run of N jobs does), in a fresh process per tree.

For each tree: CPU time (user + system) per save over all saves, the first and the last 10% of them (the
journal is folded into the record now and then, so a tenth may hold one such rewrite or none), and the bytes
the process passed to ``write`` in all (``wchar`` of /proc/self/io, Linux), against the final size of the
record and its journal. Flat per-save time and bytes in proportion to the final size mean O(1) work per file.

Run: .venv/bin/python bench/bench_record.py [--saves 1000] [--runs 3] [--src DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

CHILD = r"""
import json, os, sys, time
from pathlib import Path
from sogni_cli.media import downloads as dl

out, n = Path(sys.argv[1]), int(sys.argv[2])
out.mkdir()
def wchar():
    try:
        for line in open("/proc/self/io"):
            if line.startswith("wchar:"):
                return int(line.split()[1])
    except OSError:
        return 0
    return 0
tenth = max(1, n // 10)
marks = {}
w0 = wchar()
for i in range(n):
    if i in (0, tenth, n - tenth):
        marks[i] = time.process_time()
    name = f"a-lighthouse-at-dusk-{i:05d}.png"
    (out / name).write_bytes(b"x")
    r = dl.ArtifactRef(f"https://cdn.sogni.ai/runs/r/wf_{i:032x}/out-1.png?sig=1", workflow_id=f"wf_{i:032x}")
    ident = dl.identity(r, r.url)
    dl.record_saved(out, [(dl.SavedFile(r, out / name, 1, "ab" * 32, "image/png"), ident)])
end = time.process_time()
written = wchar() - w0 - n  # less the one byte of each saved file
size = sum(p.stat().st_size for p in out.iterdir() if p.name.startswith(".sogni-downloads"))
print(json.dumps({"mean": (end - marks[0]) / n * 1e3, "first": (marks[tenth] - marks[0]) / tenth * 1e3, "last": (end - marks[n - tenth]) / tenth * 1e3,
                  "written": written, "size": size, "entries": len(dl.read_record(out))}))
"""


def run(tree: Path, saves: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        env = dict(os.environ, PYTHONPATH=str(tree))
        p = subprocess.run([sys.executable, "-c", CHILD, str(Path(tmp) / "out"), str(saves)], env=env, cwd=str(tree),
                           capture_output=True, text=True, check=True)
        return json.loads(p.stdout)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--saves", type=int, default=1000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--src", type=Path, default=None, help="another checkout to measure in the same run")
    a = ap.parse_args()
    trees = [("this tree", ROOT)] + ([(str(a.src), a.src)] if a.src else [])
    got: dict[str, list[dict]] = {label: [] for label, _ in trees}
    print(f"{a.saves} saves of one file each, medians of {a.runs}, load average {os.getloadavg()[0]:.2f} at start")
    for i in range(a.runs):
        for label, tree in (trees if i % 2 == 0 else trees[::-1]):
            got[label].append(run(tree, a.saves))
    for label, rs in got.items():
        med = {k: statistics.median(r[k] for r in rs) for k in rs[0]}
        print(f"  [{label}]")
        print(f"    CPU per save, all: {med['mean']:6.3f} ms   first 10%: {med['first']:6.3f} ms   "
              f"last 10%: {med['last']:6.3f} ms")
        print(f"    bytes written: {med['written'] / 1e6:8.2f} MB for a final record + journal of "
              f"{med['size'] / 1e3:.0f} KB ({med['written'] / max(med['size'], 1):.1f}x); entries {med['entries']:.0f}")
    print(f"load average {os.getloadavg()[0]:.2f} at the end")
    return 0


if __name__ == "__main__":
    sys.exit(main())
