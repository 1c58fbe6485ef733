#!/usr/bin/env python3
"""Benchmark: a 24-megapixel JPEG to a vision ``data:`` URI.

Compares ``prepare_vision_image`` (JPEG draft decoding straight to the target size, then LANCZOS) with a
naive baseline (``Image.open`` + ``thumbnail((1024, 1024))`` + JPEG encode + base64), in the same run:
median of N timed runs each (interleaved), and the peak resident memory of one run of each, measured in
fresh subprocesses (``VmHWM``, else ``resource.getrusage``) (Pillow's pixel buffers are invisible to tracemalloc).

Usage: python bench/bench_vision.py [--runs 5] [--width 6000 --height 4000]
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)


def make_photo(path: str, width: int, height: int) -> None:
    """A noisy photo-like JPEG: smooth colour gradients plus per-channel noise (compresses like a photo)."""
    from PIL import Image

    channels = []
    for i, sigma in enumerate((40, 55, 70)):
        gradient = Image.linear_gradient("L").resize((width, height))
        if i == 1:
            gradient = gradient.rotate(90, expand=False).resize((width, height))
        noise = Image.effect_noise((width, height), sigma)
        channels.append(Image.blend(gradient, noise, 0.3))
    Image.merge("RGB", channels).save(path, "JPEG", quality=92)


def naive(path: str) -> tuple[int, int, int]:
    from PIL import Image

    with Image.open(path) as im:
        im.thumbnail((1024, 1024))
        buf = io.BytesIO()
        im.convert("RGB").save(buf, "JPEG", quality=90)
    uri = "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")
    return im.size[0], im.size[1], len(uri)


def prepared(path: str) -> tuple[int, int, int]:
    from sogni_cli.media.inputs import prepare_vision_image

    v = prepare_vision_image(path)
    return v.width, v.height, len(v.data_uri)


METHODS = {"naive thumbnail": naive, "prepare_vision_image": prepared}

_CHILD = r"""
import json, resource, sys
sys.path.insert(0, sys.argv[3])
import bench_vision as b
from PIL import Image, JpegImagePlugin  # imports before the baseline reading
import sogni_cli.media.inputs

def peak_kib():
    # VmHWM belongs to this process image; ru_maxrss can carry the parent's peak over a fork on Linux.
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kib // 1024 if sys.platform == "darwin" else kib

before = peak_kib()
size = b.METHODS[sys.argv[1]](sys.argv[2])
after = peak_kib()
print(json.dumps({"before_kib": before, "after_kib": after, "size": size}))
"""


def peak_memory(method: str, path: str) -> dict:
    here = os.path.dirname(os.path.abspath(__file__))
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (ROOT, env.get("PYTHONPATH", "")) if p)
    out = subprocess.run([sys.executable, "-c", _CHILD, method, path, here], check=True,
                         capture_output=True, text=True, env=env)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--width", type=int, default=6000)
    ap.add_argument("--height", type=int, default=4000)
    args = ap.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="sogni-bench-") as tmp:
        path = os.path.join(tmp, "photo.jpg")
        t0 = time.perf_counter()
        make_photo(path, args.width, args.height)
        print(f"test image: {args.width}x{args.height} JPEG, {os.path.getsize(path) / 1e6:.1f} MB "
              f"(made in {time.perf_counter() - t0:.1f} s)")

        for fn in METHODS.values():  # warm-up: imports, plugin registration, page cache
            fn(path)
        times: dict[str, list[float]] = {name: [] for name in METHODS}
        results = {}
        for _ in range(args.runs):
            for name, fn in METHODS.items():
                t = time.perf_counter()
                results[name] = fn(path)
                times[name].append(time.perf_counter() - t)

        medians = {name: statistics.median(ts) for name, ts in times.items()}
        print(f"\nmedian of {args.runs} runs (interleaved):")
        for name, med in medians.items():
            w, h, n = results[name]
            spread = f"{min(times[name]) * 1e3:.0f}-{max(times[name]) * 1e3:.0f}"
            print(f"  {name:22s} {med * 1e3:7.1f} ms  (range {spread} ms)  -> {w}x{h}, data URI {n / 1e3:.0f} kB")
        ratio = medians["prepare_vision_image"] / medians["naive thumbnail"]
        print(f"  ratio prepare/naive:   {ratio:.2f}x")

        print("\npeak resident memory of one run (fresh process, increase over the post-import baseline):")
        for name in METHODS:
            mem = peak_memory(name, path)
            delta_mib = max(0, mem["after_kib"] - mem["before_kib"]) / 1024
            print(f"  {name:22s} +{delta_mib:6.1f} MiB  (peak {mem['after_kib'] / 1024:.0f} MiB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
