"""Several `sogni` processes saving into one folder at once, against one emulator: each keeps its own file."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

pytestmark = pytest.mark.e2e

WF = "/v1/creative-agent/workflows"


def test_six_image_runs_into_one_folder_each_save_their_own_file(emulator, sogni_env, tmp_path):
    from PIL import Image

    out = tmp_path / "conc"
    procs = [subprocess.Popen([sys.executable, "-m", "sogni_cli", "image", "a cat", "--seed", str(seed),
                               "-o", str(out)], env=sogni_env, cwd=tmp_path, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, encoding="utf-8")
             for seed in range(1, 7)]
    results = []
    try:
        for p in procs:
            stdout, stderr = p.communicate(timeout=120)
            results.append((p.returncode, stdout, stderr))
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    for code, stdout, stderr in results:
        assert code == 0, stderr
        assert sogni_env["SOGNI_API_KEY"] not in stdout + stderr

    printed = [stdout.splitlines() for _, stdout, _ in results]
    assert all(len(lines) == 1 for lines in printed), printed
    paths = [Path(lines[0]) for lines in printed]
    assert len(set(paths)) == 6
    on_disk = sorted(p.name for p in out.iterdir() if not p.name.startswith("."))
    assert on_disk == sorted(p.name for p in paths)  # six files, no part left behind
    assert all(re.fullmatch(r"a-cat-1(-\d+)?\.png", name) for name in on_disk)

    posts = [r for r in emulator.requests if r["method"] == "POST" and r["path"] == WF]
    assert len(posts) == 6  # one workflow each, none sent twice
    contents = set()
    for (_, _, stderr), path in zip(results, paths):
        [wid] = set(re.findall(r"Workflow: (wf_\w+)", stderr))
        [url] = emulator.store.artifact_urls(wid)
        artifact = httpx.get(url, timeout=30).content
        data = path.read_bytes()
        assert data == artifact, f"{path} is not the artifact of {wid}"
        with Image.open(path) as im:
            assert im.format == "PNG"
            im.verify()
        contents.add(data)
    assert len(contents) == 6  # six different images (one seed each), none lost or written over

    from sogni_cli.media import downloads as dl

    record = dl.read_record(out)
    assert sorted(record) == on_disk  # every process's entry survived the others' updates
