"""`sogni recipe report --html`: one self-contained page; escaped text; refused targets; Chromium loads it."""

from __future__ import annotations

import json
import re
from pathlib import Path

from PIL import Image

from . import browser

HOSTILE = '<script>alert(1)</script><img src=x onerror="alert(2)">'


def _png(path: Path, colour: tuple[int, int, int]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (640, 480), colour).save(path)


def _rec(**kw):
    base = {"recipe": "shots", "kind": "image", "status": "succeeded", "outputs": [], "duration": 3.2,
            "time": "2026-01-01T00:00:00.000Z"}
    return {**base, **kw}


def make_tree(root: Path) -> Path:
    """Two shard folders of one recipe: images, a video, an audio file, a failure and a never-started job."""
    s1, s2 = root / "shard-0", root / "shard-1"
    _png(s1 / "shots" / "a-1.png", (200, 30, 30))
    _png(s1 / "shots" / "a-2.png", (30, 200, 30))
    _png(s2 / "shots" / "b-1.png", (30, 30, 200))
    (s2 / "clips").mkdir(parents=True)
    (s2 / "clips" / "c-1.mp4").write_bytes(b"\x00" * 64)
    (s2 / "music").mkdir(parents=True)
    (s2 / "music" / "m-1.mp3").write_bytes(b"\x00" * 64)
    lines1 = [
        {"record": "plan", "recipe": "shots", "jobs": ["a", "z"], "shard": "1/2", "shards": 2},
        _rec(id="a", outputs=[{"path": "shots/a-1.png", "bytes": 1}, {"path": "shots/a-2.png", "bytes": 1}],
             details={"prompt": "a red " + HOSTILE, "model": "z-turbo", "seed": 42},
             cost={"units": 1.5, "token_type": "spark"}, shard="1/2"),
    ]
    lines2 = [
        {"record": "plan", "recipe": "shots", "jobs": ["b", "c", "m", "f", "evil"], "shard": "2/2", "shards": 2},
        _rec(id="b", outputs=[{"path": "shots/b-1.png", "bytes": 1}], details={"prompt": "blue", "seed": 7}),
        _rec(id="c", kind="video", outputs=[{"path": "clips/c-1.mp4", "bytes": 64}]),
        _rec(id="m", kind="music", outputs=[{"path": "music/m-1.mp3", "bytes": 64}]),
        _rec(id="f", status="failed", error={"message": "Workflow failed: " + HOSTILE, "exit_code": 7}),
        _rec(id="evil", outputs=[{"path": "../../../../etc/passwd", "bytes": 1}]),
    ]
    for folder, lines in ((s1, lines1), (s2, lines2)):
        (folder / ".sogni-run").mkdir(parents=True, exist_ok=True)
        (folder / ".sogni-run" / "shots.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    return root


def test_page_has_every_file_failed_first_and_nothing_from_the_network(cli, tmp_cwd):
    make_tree(tmp_cwd / "out")
    res = cli("recipe", "report", "out/shard-0", "out/shard-1", "--html", "report/index.html")
    assert res.exit_code == 8, res.stderr  # a failed and a never-started job
    assert "Wrote report/index.html (6 tiles)." in res.stderr
    assert "JOB" in res.stdout  # the table still goes to stdout
    page = (tmp_cwd / "report" / "index.html").read_text()
    assert page.count('class="tile"') == 6  # 3 images, a video, an audio file, one refused path
    assert page.count("data:image/jpeg;base64,") == 3
    assert '<video controls preload="none" src="../out/shard-1/clips/c-1.mp4">' in page
    assert '<audio controls preload="none" src="../out/shard-1/music/m-1.mp3">' in page
    assert '<a href="../out/shard-0/shots/a-1.png">' in page
    # failed, then never started, then the rest
    order = re.findall(r'<section class="job" data-status="([a-z_]+)"', page)
    assert order[:2] == ["failed", "not_started"] and set(order[2:]) == {"succeeded"}
    # the prompt, model, seed and cost are shown, and every recipe/server text is escaped
    assert "z-turbo" in page and "<dd>42</dd>" in page and "1.5 capacity units (spark)" in page
    assert HOSTILE not in page and "alert(1)" in page
    assert page.count("<script>") == 1 and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "outside the output folder" in page and "passwd" in page and "root:" not in page
    # nothing would be fetched: no http(s) anywhere in src/href, and a CSP that forbids it
    assert not re.search(r'(src|href)="(https?:)?//', page)
    assert "default-src &#x27;none&#x27;" in page


def test_html_inside_a_folder_the_report_reads_is_refused(cli, tmp_cwd):
    make_tree(tmp_cwd / "out")
    for target in ("out/shard-0/report.html", "out/shard-1/.sogni-run/x.html"):
        res = cli("recipe", "report", "out/shard-0", "out/shard-1", "--html", target)
        assert res.exit_code == 2, res.stderr
        assert "which this report reads" in res.stderr
        assert not (tmp_cwd / target).exists()
    res = cli("recipe", "report", "out/shard-1/.sogni-run/shots.jsonl", "--html", "out/shard-1/r.html")
    assert res.exit_code == 2 and "which this report reads" in res.stderr


def test_shards_of_two_recipes_are_refused(cli, tmp_cwd):
    make_tree(tmp_cwd / "out")
    other = tmp_cwd / "other" / ".sogni-run"
    other.mkdir(parents=True)
    (other / "posters.jsonl").write_text(json.dumps(_rec(recipe="posters", id="p")) + "\n")
    for extra in ([], ["--json"], ["--html", "r.html"]):
        res = cli("recipe", "report", "out/shard-0", "other", *extra)
        assert res.exit_code == 2, res.stderr
        assert "different recipes (posters, shots)" in res.stderr
    assert not (tmp_cwd / "r.html").exists()


def test_chromium_loads_the_page_without_errors(cli, tmp_cwd, tmp_path):
    make_tree(tmp_cwd / "out")
    assert cli("recipe", "report", "out/shard-0", "out/shard-1", "--html", "report/index.html").exit_code == 8
    got = browser.load(tmp_cwd / "report" / "index.html", tmp_path / "report.png")
    assert got["tiles"] == 6 and got["errors"] == 0, got["dom"][:500]
    assert got["console"] == []
    assert got["screenshot_ok"]
    assert "alert(" not in "".join(got["console"])


def test_chromium_check_sees_broken_images_and_blocked_scripts(cli, tmp_cwd, tmp_path):
    """The browser check can fail: a broken image counts as an error, an injected script is refused."""
    make_tree(tmp_cwd / "out")
    assert cli("recipe", "report", "out/shard-0", "--html", "report/index.html").exit_code == 8  # shard 2 missing
    page = (tmp_cwd / "report" / "index.html").read_text()
    bad = page.replace("<main>", '<main><img src="data:image/png;base64,AAAA"><script>window.x = 1;</script>', 1)
    (tmp_cwd / "report" / "bad.html").write_text(bad)
    got = browser.load(tmp_cwd / "report" / "bad.html", tmp_path / "bad.png")
    assert got["tiles"] == 2 and got["errors"] >= 1
    assert any("inline script violates the following Content Security" in line for line in got["console"]), got["console"]
