#!/usr/bin/env python3
"""Benchmark: start-up time of `sogni` (whole process), and what the fast paths import.

Timed, interleaved, median of R runs each (R >= 10):

- ``python -c pass`` and ``python -c "import httpx"`` (the yardsticks);
- ``python -m sogni_cli --version``, ``--help`` and ``chat --help``;
- per install, its floor ``python -c 'import re, sys'`` (what the console-script launcher costs before
  `sogni` runs: an editable install adds its import hook to every start of that interpreter) and the console
  script ``sogni --version``: the venv this script runs in (editable, as for development) and, with
  ``--plain DIR``, a venv with a plain ``pip install .`` (``--make-plain DIR`` creates it first).

Prints ms, × ``python -c pass`` and × ``import httpx``, and the verdict for the targets:
``sogni --version`` (console script) <= 1.25x the floor of its own install, ``--help`` <= 60 ms, and no
import of httpx, rich, PIL or yaml on the ``--version`` and ``--help`` paths (checked with
``python -X importtime`` in a subprocess; a hit prints FAIL). ``chat --help`` is checked too and reported.

The child processes run with bytecode caching on (``PYTHONPYCACHEPREFIX`` in a temporary folder) and without
``PYTHONUNBUFFERED``, as in a user's shell, unless ``--keep-env``.

Usage: python bench/bench_startup.py [--runs 15] [--keep-env] [--src DIR] [--plain DIR | --make-plain DIR]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PY = sys.executable
HEAVY = ("httpx", "rich", "PIL", "yaml")
TARGETS_MS = {"sogni --help (-m)": 60.0}
FLOOR_TARGET = 1.25  # console script --version vs python -c 'import re, sys' of the same install
IMPORT_CHECKED = {"sogni --version (-m)": True, "sogni --help (-m)": True, "sogni chat --help (-m)": False,
                  "sogni --version (script, editable)": True, "sogni --version (script, plain)": True}


def commands(plain: str | None = None) -> dict[str, list[str]]:
    cmds = {
        "python -c pass": [PY, "-c", "pass"],
        "python -c 'import httpx'": [PY, "-c", "import httpx"],
        "sogni --version (-m)": [PY, "-m", "sogni_cli", "--version"],
        "sogni --help (-m)": [PY, "-m", "sogni_cli", "--help"],
        "sogni chat --help (-m)": [PY, "-m", "sogni_cli", "chat", "--help"],
    }
    script = os.path.join(os.path.dirname(PY), "sogni")
    if not os.path.exists(script):
        script = shutil.which("sogni") or ""
    if script:
        cmds["floor (editable): python -c 'import re, sys'"] = [PY, "-c", "import re, sys"]
        cmds["sogni --version (script, editable)"] = [script, "--version"]
    if plain:
        bindir = os.path.join(plain, "bin")
        cmds["floor (plain): python -c 'import re, sys'"] = [os.path.join(bindir, "python"), "-c", "import re, sys"]
        cmds["sogni --version (script, plain)"] = [os.path.join(bindir, "sogni"), "--version"]
    return cmds


def make_plain(folder: str) -> str:
    """A venv in ``folder`` with a plain (not editable) ``pip install`` of this checkout."""
    if not os.path.exists(os.path.join(folder, "bin", "sogni")):
        subprocess.run([PY, "-m", "venv", folder], check=True)
        subprocess.run([os.path.join(folder, "bin", "pip"), "install", "-q", ROOT], check=True)
    return folder


def make_env(tmp: str, keep: bool, src: str | None) -> dict[str, str]:
    env = dict(os.environ)
    if not keep:
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env.pop("PYTHONUNBUFFERED", None)
        env["PYTHONPYCACHEPREFIX"] = os.path.join(tmp, "pycache")
    env["SOGNI_CONFIG_DIR"] = os.path.join(tmp, "config")
    if src:
        env["PYTHONPATH"] = os.pathsep.join([src] + [p for p in [env.get("PYTHONPATH")] if p])
    return env


CPU: dict[str, list[float]] = {}  # command -> CPU seconds (user + system) of each timed run


def run_once(cmd: list[str], env: dict[str, str], cwd: str, name: str | None = None) -> float:
    with tempfile.TemporaryFile() as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err, env=env, cwd=cwd)
        _, status, usage = os.wait4(proc.pid, 0)
        dt = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode != 0:
            err.seek(0)
            raise SystemExit(f"{cmd!r} exited {proc.returncode}: {err.read().decode(errors='replace')[-1000:]}")
    if name is not None:
        CPU.setdefault(name, []).append(usage.ru_utime + usage.ru_stime)
    return dt


def heavy_imports(cmd: list[str], env: dict[str, str], cwd: str) -> list[str]:
    """The heavy top-level packages imported by ``cmd`` (``python -X importtime``)."""
    if not os.path.basename(cmd[0]).startswith("python"):  # a console script: run it through its interpreter
        cmd = [os.path.join(os.path.dirname(cmd[0]), "python"), cmd[0], *cmd[1:]]
    proc = subprocess.run([cmd[0], "-X", "importtime", *cmd[1:]], stdin=subprocess.DEVNULL,
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env, cwd=cwd, text=True)
    found = set()
    for line in proc.stderr.splitlines():
        if not line.startswith("import time:") or "|" not in line:
            continue
        name = line.rsplit("|", 1)[1].strip()
        top = name.split(".", 1)[0]
        if top in HEAVY:
            found.add(top)
    return sorted(found)


def main() -> int:
    ap = argparse.ArgumentParser(description="Start-up benchmark for `sogni`.")
    ap.add_argument("--runs", type=int, default=15)
    ap.add_argument("--keep-env", action="store_true",
                    help="keep PYTHONDONTWRITEBYTECODE/PYTHONUNBUFFERED as set (default: a user's usual environment)")
    ap.add_argument("--src", help="import sogni_cli from this folder (to measure a modified copy)")
    ap.add_argument("--plain", help="a venv with a plain `pip install .` of this checkout (console script rows)")
    ap.add_argument("--make-plain", metavar="DIR", help="create that venv in DIR first (kept for later runs)")
    a = ap.parse_args()
    plain = make_plain(os.path.abspath(a.make_plain)) if a.make_plain else (os.path.abspath(a.plain) if a.plain else None)
    runs = max(a.runs, 10)
    src = os.path.abspath(a.src) if a.src else None

    with tempfile.TemporaryDirectory(prefix="sogni-startup-") as tmp:
        env = make_env(tmp, a.keep_env, src)
        cmds = commands(plain)
        for cmd in cmds.values():  # warm-up: page cache and bytecode cache
            run_once(cmd, env, tmp)
        times: dict[str, list[float]] = {k: [] for k in cmds}
        order = list(cmds)
        for r in range(runs):
            k = r % len(order)
            for name in order[k:] + order[:k]:
                times[name].append(run_once(cmds[name], env, tmp, name))
        imports = {name: heavy_imports(cmds[name], env, tmp) for name in IMPORT_CHECKED if name in cmds}

    med = {k: statistics.median(v) * 1000 for k, v in times.items()}
    bare, httpx_ms = med["python -c pass"], med["python -c 'import httpx'"]
    print(f"Python {sys.version.split()[0]}, {os.cpu_count()} CPUs, median of {runs} interleaved runs, whole processes"
          + (", environment as is" if a.keep_env else ", bytecode cached") + (f", sogni_cli from {src}" if src else ""))
    print()
    print("| command | ms (median) | min-max | × `python -c pass` | × `import httpx` | CPU ms (median) | heavy imports "
          "| target |")
    print("|---|---|---|---|---|---|---|---|")
    ok = True
    for name in cmds:
        lo, hi = min(times[name]) * 1000, max(times[name]) * 1000
        heavy = imports.get(name)
        if heavy is None:
            hv = "—"
        elif heavy:
            hv = "FAIL: " + ", ".join(heavy) if IMPORT_CHECKED[name] else "(" + ", ".join(heavy) + ")"
            ok &= not IMPORT_CHECKED[name]
        else:
            hv = "none"
        target = TARGETS_MS.get(name)
        if target is not None:
            verdict = "PASS" if med[name] <= target else "FAIL"
            ok &= verdict == "PASS"
            tv = f"<= {target:g} ms {verdict}"
        else:
            tv = "—"
        cpu_ms = statistics.median(CPU[name]) * 1000
        print(f"| {name} | {med[name]:.1f} | {lo:.1f}-{hi:.1f} | {med[name] / bare:.1f} | {med[name] / httpx_ms:.2f} "
              f"| {cpu_ms:.1f} | {hv} | {tv} |")
    for kind in ("editable", "plain"):
        script, floor = f"sogni --version (script, {kind})", f"floor ({kind}): python -c 'import re, sys'"
        if script in med and floor in med:
            ratio = med[script] / med[floor]
            verdict = "PASS" if ratio <= FLOOR_TARGET else "FAIL"
            ok &= verdict == "PASS"
            cpu_ratio = statistics.median(CPU[script]) / statistics.median(CPU[floor])
            print(f"\ntarget sogni --version ({kind} install) <= {FLOOR_TARGET}x its floor: {ratio:.2f}x {verdict} "
                  f"(CPU time: {cpu_ratio:.2f}x)", end="")
    print()
    print("imports:", "PASS (no httpx/rich/PIL/yaml on --version/--help)" if not any(
        imports.get(n) for n, chk in IMPORT_CHECKED.items() if chk) else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
