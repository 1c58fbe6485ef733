"""``sogni recipe report … --html FILE``: one self-contained page to look at a run's results.

The page needs no network and loads no external script or style: thumbnails are made with Pillow and
embedded as data URIs, audio and video play from the files themselves (linked relative to the page), and
a small inline script (allowed by its hash in the page's Content-Security-Policy, nothing else is) filters
by status and kind. Failed, interrupted and never-started jobs come first. Every text from a recipe, a
record or a server is escaped: it is data, never markup.

The script writes the page title as ``… — N tiles, E errors`` once the page has loaded (tiles shown,
images that failed to decode, script errors), so a headless browser's DOM dump says whether it worked.
"""

from __future__ import annotations

import base64
import hashlib
import html
import io
import os
from pathlib import Path
from typing import Any
from urllib.parse import quote

from ..core.errors import UsageError
from ..recipes.report import RECORD_DIR, headline, latest

THUMB = 320
IMAGE_EXT = {".png", ".jpg", ".jpeg", ".webp", ".gif", ".bmp"}
AUDIO_EXT = {".mp3", ".wav", ".ogg", ".flac", ".m4a", ".aac", ".opus"}
VIDEO_EXT = {".mp4", ".webm", ".mov", ".m4v", ".mkv"}
TEXT_EXT = {".txt", ".md", ".json", ".srt", ".vtt"}
TEXT_PREVIEW = 600
ORDER = {"failed": 0, "interrupted": 1, "started": 1, "starting": 1, "not_started": 2, "cancelled": 3,
         "skipped": 4, "succeeded": 5}

SCRIPT = """(function () {
  var errors = 0;
  window.addEventListener('error', function () { errors += 1; }, true);
  function apply() {
    var off = {};
    document.querySelectorAll('input[data-filter]').forEach(function (box) {
      if (!box.checked) { off[box.getAttribute('data-filter') + ':' + box.value] = true; }
    });
    document.querySelectorAll('.job').forEach(function (job) {
      var hideJob = off['status:' + job.getAttribute('data-status')];
      var shown = 0;
      job.querySelectorAll('.tile').forEach(function (t) {
        var hide = hideJob || off['kind:' + t.getAttribute('data-kind')];
        t.hidden = !!hide;
        if (!hide) { shown += 1; }
      });
      job.hidden = !!hideJob || (job.querySelectorAll('.tile').length > 0 && shown === 0);
    });
  }
  document.querySelectorAll('input[data-filter]').forEach(function (box) {
    box.addEventListener('change', apply);
  });
  window.addEventListener('load', function () {
    apply();
    var broken = 0;
    document.querySelectorAll('img').forEach(function (img) {
      if (!img.complete || img.naturalWidth === 0) { broken += 1; }
    });
    var tiles = document.querySelectorAll('.tile:not([hidden])').length;
    document.title = document.title.split(' \\u2014 ')[0] + ' \\u2014 ' + tiles + ' tiles, ' + (errors + broken) + ' errors';
  });
})();"""

STYLE = """
body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;background:#fafafa;color:#222}
h1{font-size:1.3em;margin:0 0 .3em}.head{color:#555;margin-bottom:1em}
.filters{display:flex;flex-wrap:wrap;gap:.4em 1.2em;margin:0 0 1em}.filters label{white-space:nowrap}
.job{background:#fff;border:1px solid #ddd;border-left:6px solid #8c8;border-radius:6px;margin:0 0 1em;padding:.6em .8em}
.job[data-status=failed]{border-left-color:#d33}.job[data-status=not_started]{border-left-color:#999}
.job[data-status=interrupted],.job[data-status=cancelled],.job[data-status=skipped]{border-left-color:#e90}
.meta{display:grid;grid-template-columns:max-content 1fr;gap:.1em .8em;margin:.3em 0 .6em}
.meta dt{color:#666}.meta dd{margin:0;overflow-wrap:anywhere;white-space:pre-wrap}
.status{font-weight:600}.err{color:#b00;white-space:pre-wrap;overflow-wrap:anywhere}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(200px,1fr));gap:.6em}
.tile{border:1px solid #eee;border-radius:4px;padding:.3em;background:#fcfcfc;overflow:hidden}
.tile img{width:100%;height:auto;display:block}.tile video,.tile audio{width:100%}
.tile .name{font-size:.85em;overflow-wrap:anywhere}.tile pre{white-space:pre-wrap;font-size:.8em;max-height:12em;overflow:auto}
"""


def _e(text: Any) -> str:
    return html.escape("" if text is None else str(text), quote=True)


def _kind_of(path: Path) -> str:
    ext = path.suffix.lower()
    if ext in IMAGE_EXT:
        return "image"
    if ext in AUDIO_EXT:
        return "audio"
    if ext in VIDEO_EXT:
        return "video"
    if ext in TEXT_EXT:
        return "text"
    return "other"


def thumbnail(path: Path, size: int = THUMB) -> str | None:
    """A JPEG data URI of the image at ``path`` (None when Pillow cannot read it)."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            im.thumbnail((size, size))
            if im.mode not in ("RGB", "L"):
                im = im.convert("RGBA")
                bg = Image.new("RGB", im.size, (255, 255, 255))
                bg.paste(im, mask=im.getchannel("A"))
                im = bg
            buf = io.BytesIO()
            im.save(buf, "JPEG", quality=80)
    except Exception:  # noqa: BLE001 - a damaged or hostile file gets a placeholder, not a crash
        return None
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def output_root(source: str) -> Path:
    """The output folder a run record file belongs to (``OUT/.sogni-run/x.jsonl`` -> ``OUT``)."""
    p = Path(source).resolve().parent
    return p.parent if p.name == RECORD_DIR else p


def read_roots(paths: list[str]) -> list[Path]:
    """The folders ``report`` reads for these arguments."""
    roots = []
    for p in paths:
        path = Path(p).resolve()
        roots.append(output_root(str(path)) if path.is_file() else (path.parent if path.name == RECORD_DIR else path))
    return roots


def check_target(target: Path, paths: list[str]) -> None:
    """Refuse an HTML file inside a folder the report reads (a shard's folder would then carry the report)."""
    t = target.resolve()
    for root in read_roots(paths):
        try:
            t.relative_to(root)
        except ValueError:
            continue
        raise UsageError(f"--html {target}: that is inside {root}, which this report reads.",
                         hint="Write the page beside the shard folders, e.g. --html report/index.html.")


def _href(target_dir: Path, file: Path) -> str:
    return quote(os.path.relpath(file, target_dir).replace(os.sep, "/"))


def _tile(out: dict[str, Any], root: Path, target_dir: Path) -> str:
    rel = str(out.get("path") or "")
    file = (root / rel).resolve()
    try:
        file.relative_to(root)
        inside = True
    except ValueError:
        inside = False
    kind = _kind_of(file)
    name = f'<div class="name">{_e(rel)}</div>'
    if not inside:
        return (f'<div class="tile" data-kind="{kind}">{name}'
                '<div class="err">outside the output folder: not shown</div></div>')
    if not file.is_file():
        return f'<div class="tile" data-kind="{kind}">{name}<div class="err">missing</div></div>'
    href = _href(target_dir, file)
    if kind == "image":
        uri = thumbnail(file)
        body = (f'<a href="{_e(href)}"><img src="{uri}" alt="{_e(rel)}" loading="eager"></a>' if uri
                else '<div class="err">cannot make a thumbnail</div>')
    elif kind == "audio":
        body = f'<audio controls preload="none" src="{_e(href)}"></audio>'
    elif kind == "video":
        body = f'<video controls preload="none" src="{_e(href)}"></video>'
    elif kind == "text":
        try:
            with open(file, encoding="utf-8", errors="replace") as fh:
                text = fh.read(TEXT_PREVIEW + 1)
        except OSError:
            text = ""
        body = f"<pre>{_e(text[:TEXT_PREVIEW])}{'…' if len(text) > TEXT_PREVIEW else ''}</pre>"
    else:
        body = ""
    return f'<div class="tile" data-kind="{kind}">{body}{name}<a href="{_e(href)}">open</a></div>'


def _cost(row: dict[str, Any]) -> str:
    c = row.get("cost")
    if not isinstance(c, dict) or c.get("units") is None:
        return ""
    return f"{c['units']} capacity units" + (f" ({c['token_type']})" if c.get("token_type") else "")


def _duration(v: Any) -> str:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return ""
    return f"{v:.1f} s"


def _job(row: dict[str, Any], rec: dict[str, Any] | None, target_dir: Path) -> tuple[str, int]:
    status = str(row.get("status") or "failed")
    if status in ("started", "starting"):
        status = "interrupted"
    details = (rec or {}).get("details") or row.get("details") or {}
    if not isinstance(details, dict):
        details = {}
    err = row.get("error")
    message = err.get("message") if isinstance(err, dict) else err
    items = [("recipe", row.get("recipe")), ("kind", row.get("kind")), ("prompt", details.get("prompt")),
             ("tool", details.get("tool")), ("model", details.get("model")), ("seed", details.get("seed")),
             ("cost", _cost(row)), ("duration", _duration(row.get("duration"))), ("shard", row.get("shard")),
             ("workflow", row.get("workflow_id"))]
    meta = "".join(f"<dt>{_e(k)}</dt><dd>{_e(v)}</dd>" for k, v in items if v not in (None, ""))
    tiles = []
    if rec is not None and rec.get("_source"):
        root = output_root(str(rec["_source"]))
        tiles = [_tile(o, root, target_dir) for o in (row.get("outputs") or []) if isinstance(o, dict)]
    text = row.get("text") if not tiles and isinstance(row.get("text"), str) else ""
    parts = [f'<section class="job" data-status="{_e(status)}" data-kind="{_e(row.get("kind") or "")}">',
             f'<h2><span class="status">{_e(status.replace("_", " "))}</span> · {_e(row.get("id"))}</h2>',
             f'<dl class="meta">{meta}</dl>']
    if message and status != "succeeded":
        parts.append(f'<div class="err">{_e(message)}</div>')
    if text:
        parts.append(f"<pre>{_e(text[:TEXT_PREVIEW])}</pre>")
    if tiles:
        parts.append('<div class="grid">' + "".join(tiles) + "</div>")
    parts.append("</section>")
    return "".join(parts), len(tiles)


def render(summary: dict[str, Any], records: list[dict[str, Any]], target: Path) -> tuple[str, int]:
    """The page for a merged summary (its rows) and the raw records (for each job's folder); (html, tiles)."""
    final = latest(records)
    target_dir = target.resolve().parent
    rows = sorted(summary["jobs"], key=lambda r: (ORDER.get(str(r.get("status")), 0), str(r.get("id"))))
    jobs, tiles = [], 0
    for r in rows:
        block, n = _job(r, final.get((str(r.get("recipe", "")), str(r.get("id")))), target_dir)
        jobs.append(block)
        tiles += n
    names = ", ".join(n for n in summary.get("recipes", []) if n) or "recipe"
    statuses = sorted({("interrupted" if r.get("status") in ("started", "starting") else str(r.get("status")))
                       for r in rows}, key=lambda s: ORDER.get(s, 0))
    kinds = ["image", "video", "audio", "text", "other"]
    boxes = ['<span>Status:</span>'] + [
        f'<label><input type="checkbox" data-filter="status" value="{_e(s)}" checked> {_e(s.replace("_", " "))}'
        f"</label>" for s in statuses] + ['<span>Kind:</span>'] + [
        f'<label><input type="checkbox" data-filter="kind" value="{k}" checked> {k}</label>' for k in kinds]
    digest = base64.b64encode(hashlib.sha256(SCRIPT.encode("utf-8")).digest()).decode("ascii")
    csp = (f"default-src 'none'; img-src data:; media-src 'self' file:; style-src 'unsafe-inline'; "
           f"script-src 'sha256-{digest}'; base-uri 'none'; form-action 'none'")
    title = f"sogni report: {names}"
    page = f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{_e(csp)}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{_e(title)}</title>
<style>{STYLE}</style>
</head>
<body>
<h1>{_e(title)}</h1>
<div class="head">{_e(headline(summary))}</div>
<div class="filters">{''.join(boxes)}</div>
<main>
{chr(10).join(jobs)}
</main>
<script>{SCRIPT}</script>
</body>
</html>
"""
    return page, tiles


def write_report(summary: dict[str, Any], records: list[dict[str, Any]], target: Path) -> int:
    """Write the page to ``target`` (whole, or not at all); returns the number of tiles."""
    page, tiles = render(summary, records, target)
    from ..core.filewrite import write_atomic

    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(target, page)
    except OSError as exc:
        raise UsageError(f"Cannot write {target}: {exc.strerror or exc}") from None
    return tiles
