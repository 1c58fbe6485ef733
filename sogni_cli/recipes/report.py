"""Run records (``OUT/.sogni-run/<recipe>.jsonl``) and summaries: a table, Markdown, JSON.

A run record has JSON lines for each job: ``recipe``, ``id``, ``job``, ``kind``, ``matrix``, ``status``,
``request_hash``, ``workflow_id``, ``outputs`` (``path`` relative to the output folder, ``sha256``,
``bytes``), ``text`` (chat and text tools), ``duration`` (s), ``error`` (``message``, ``exit_code``),
``shard`` and ``time``. A ``started`` line is written as soon as a job's workflow exists; the line written
when the job ends (``succeeded``, ``failed``, ``cancelled``, ``skipped`` or ``interrupted``) supersedes it.
Lines are appended and flushed one by one; within one file the last line for an id is its current state
(across files, the latest ``time``). A job whose last line is ``started`` (the run crashed) counts as
interrupted.

The first line of each run is its plan (``"record": "plan"``: ``jobs``, the job instances this run or shard
is to do, ``shard`` and ``shards``). Lines ``starting`` (before a paid request leaves, with its
``idempotency_key`` and ``attempt``) and ``started`` (its ``workflow_id``) come before a job's final line.
A report counts planned jobs that have no line as ``not_started`` and names the shards of a sharded run
that left no record at all.
"""

from __future__ import annotations

import json
import math
import os
import stat
from pathlib import Path
from typing import Any, Iterable

from ..core.errors import UsageError

RECORD_DIR = ".sogni-run"
TABLE_ROWS = 50
MARKDOWN_ROWS = 200
STATUSES = ("succeeded", "failed", "cancelled", "skipped", "interrupted", "not_started")


def record_path(output_dir: Path, recipe_name: str) -> Path:
    from ..media.naming import slugify

    return Path(output_dir) / RECORD_DIR / f"{slugify(recipe_name, 80) or 'recipe'}.jsonl"


def record_problem(rec: dict[str, Any]) -> str | None:
    """What is wrong with the fields of a record line (None when they have the types a run writes)."""
    for key in ("recipe", "job", "kind", "status", "time", "workflow_id", "request_hash", "text", "shard",
                "idempotency_key", "workflow_status"):
        if rec.get(key) is not None and not isinstance(rec[key], str):
            return f"'{key}' must be text"
    attempt = rec.get("attempt")
    if attempt is not None and (isinstance(attempt, bool) or not isinstance(attempt, int) or attempt < 0):
        return "'attempt' must be a whole number"
    cost = rec.get("cost")
    if cost is not None and (not isinstance(cost, dict) or (cost.get("units") is not None and (
            isinstance(cost["units"], bool) or not isinstance(cost["units"], (int, float))
            or not math.isfinite(cost["units"])))):
        return "'cost' must be an object with a number of 'units'"
    dur = rec.get("duration")
    if dur is not None and (isinstance(dur, bool) or not isinstance(dur, (int, float)) or not math.isfinite(dur)):
        return "'duration' must be a number of seconds"
    outputs = rec.get("outputs")
    if outputs is not None:
        if not isinstance(outputs, list):
            return "'outputs' must be a list"
        for i, o in enumerate(outputs, 1):
            if not isinstance(o, dict) or not isinstance(o.get("path"), str):
                return f"output {i} must be an object with a 'path'"
            n = o.get("bytes")
            if n is not None and (isinstance(n, bool) or not isinstance(n, int)):
                return f"output {i}: 'bytes' must be a whole number"
    return None


def _plan_problem(rec: dict[str, Any]) -> str | None:
    jobs = rec.get("jobs")
    if not isinstance(jobs, list) or not all(isinstance(j, str) for j in jobs):
        return "'jobs' must be a list of job ids"
    shards = rec.get("shards", 1)
    if isinstance(shards, bool) or not isinstance(shards, int) or shards < 1:
        return "'shards' must be a whole number"
    if rec.get("shard") is not None and not isinstance(rec.get("shard"), str):
        return "'shard' must be text"
    return None


def read_record_file(path: Path, plans: list[dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    """Every valid line of a run record (a line cut short by a crash is ignored).

    A complete JSON line whose fields have the wrong types (edited or damaged) raises :class:`UsageError`
    naming ``FILE:LINE``: it cannot be told apart from a real result, so it is not silently dropped.
    """
    out: list[dict[str, Any]] = []
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            if not stat.S_ISREG(os.fstat(fh.fileno()).st_mode):
                return []  # a device or a pipe is no record (and /dev/zero-like files never end)
            for number, line in enumerate(fh, 1):
                line = line.strip()
                if not line:
                    continue
                try:
                    rec = json.loads(line)
                except (ValueError, RecursionError):
                    continue
                if isinstance(rec, dict) and rec.get("record") == "plan" and "id" not in rec:
                    problem = _plan_problem(rec)
                    if problem:
                        raise UsageError(f"{path}:{number}: invalid run record line: {problem}.",
                                         hint="Fix or delete that line (it is not what a run writes).")
                    if plans is not None:
                        plans.append(dict(rec, _source=str(path)))
                elif isinstance(rec, dict) and isinstance(rec.get("id"), str):
                    problem = record_problem(rec)
                    if problem:
                        raise UsageError(f"{path}:{number}: invalid run record line: {problem}.",
                                         hint="Fix or delete that line (it is not what a run writes).")
                    out.append(rec)
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise UsageError(f"Cannot read the run record {path}: {exc.strerror or exc}") from None
    return out


def latest(records: Iterable[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    """(recipe, id) -> the current record: within one file (``_source``) the later line wins whatever its
    ``time`` says (a clock may step back); across files the one with the latest ``time``."""
    out: dict[tuple[str, str], dict[str, Any]] = {}
    for rec in records:
        key = (str(rec.get("recipe", "")), rec["id"])
        old = out.get(key)
        if (old is None or old.get("_source") == rec.get("_source")
                or str(rec.get("time", "")) >= str(old.get("time", ""))):
            out[key] = rec
    return out


def load_records(paths: list[str], plans: list[dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    """Records from output folders (their ``.sogni-run/*.jsonl``), record folders or ``.jsonl`` files
    (``plans``: gets their plan lines)."""
    files: list[Path] = []
    for p in paths:
        path = Path(p)
        if path.is_file():
            files.append(path)
        elif (path / RECORD_DIR).is_dir():
            files.extend(sorted((path / RECORD_DIR).glob("*.jsonl")))
        elif path.is_dir() and path.name == RECORD_DIR:
            files.extend(sorted(path.glob("*.jsonl")))
        elif path.is_dir():
            found = sorted(path.rglob(f"{RECORD_DIR}/*.jsonl"))
            if not found:
                raise UsageError(f"{p}: no run record here (looked for {RECORD_DIR}/*.jsonl).")
            files.extend(found)
        else:
            raise UsageError(f"{p}: no such file or folder.")
    records: list[dict[str, Any]] = []
    for f in files:
        for rec in read_record_file(f, plans):
            rec.setdefault("_source", str(f))
            records.append(rec)
    return records


def merged_summary(records: list[dict[str, Any]], plans: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    final = latest(records)
    jobs = sorted(final.values(), key=lambda r: (str(r.get("recipe", "")), str(r.get("time", "")), r["id"]))
    missing: list[dict[str, Any]] = []
    if plans:
        last: dict[tuple[str, str], dict[str, Any]] = {}  # (recipe, source) -> that run's latest plan
        for p in plans:
            last[(str(p.get("recipe", "")), str(p.get("_source", "")))] = p
        planned: dict[str, list[str]] = {}
        shards: dict[str, tuple[int, set[int]]] = {}
        for (recipe, _src), p in sorted(last.items()):
            planned.setdefault(recipe, []).extend(j for j in p["jobs"] if j not in planned.get(recipe, []))
            n, seen = shards.get(recipe, (int(p.get("shards") or 1), set()))
            k = str(p.get("shard") or "1/1").split("/", 1)[0]
            seen.add(int(k) if k.isdigit() else 1)
            shards[recipe] = (max(n, int(p.get("shards") or 1)), seen)
        for recipe, ids in planned.items():
            for uid in ids:
                if (recipe, uid) not in final:
                    jobs.append({"recipe": recipe, "id": uid, "status": "not_started", "outputs": [],
                                 "error": {"message": "never started", "exit_code": 0}})
        for recipe, (n, seen) in sorted(shards.items()):
            missing += [{"recipe": recipe, "shard": f"{k}/{n}"} for k in range(1, n + 1) if k not in seen]
    doc = summarize(jobs, sources=sorted({r.get("_source", "") for r in records} - {""}))
    doc["missing_shards"] = missing
    return doc


def summarize(rows: list[dict[str, Any]], *, sources: list[str] | None = None,
              duration: float | None = None) -> dict[str, Any]:
    counts = {s: 0 for s in STATUSES}
    resumed = 0
    files = 0
    for r in rows:
        status = "interrupted" if r.get("status") in ("started", "starting") else r.get("status", "failed")
        counts[status if status in counts else "failed"] += 1
        resumed += 1 if r.get("resumed") else 0
        files += len(r.get("outputs") or [])
    jobs = [{k: v for k, v in r.items() if not k.startswith("_")} for r in rows]
    doc: dict[str, Any] = {
        "recipes": sorted({str(r.get("recipe", "")) for r in rows}),
        "total": len(rows), **counts, "resumed": resumed, "files": files,
        "failed_jobs": [r["id"] for r in rows if r.get("status") != "succeeded"],
        "jobs": jobs,
    }
    from .budget import cost_summary

    doc["cost"] = cost_summary(rows)
    if duration is not None:
        doc["duration"] = round(duration, 3)
    if sources is not None:
        doc["sources"] = sources
    return doc


def _dur(v: Any) -> str:
    if not isinstance(v, (int, float)) or isinstance(v, bool) or not math.isfinite(v):
        return ""
    return f"{v:.1f} s" if v < 60 else f"{int(v) // 60} min {int(v) % 60:02d} s"


def headline(s: dict[str, Any]) -> str:
    parts = [f"{s['succeeded']} succeeded" + (f" ({s['resumed']} already done)" if s.get("resumed") else "")]
    for k in ("failed", "interrupted", "cancelled", "skipped", "not_started"):
        if s.get(k):
            parts.append(f"{s[k]} {k.replace('_', ' ')}")
    n = s["total"]
    text = f"{n} job{'s' if n != 1 else ''}: " + ", ".join(parts) + f"; {s['files']} file{'s' if s['files'] != 1 else ''}"
    if s.get("duration") is not None:
        text += f"; {_dur(s['duration'])}"
    gone = s.get("missing_shards") or []
    if gone:
        text += "; missing shard" + ("s " if len(gone) > 1 else " ") + ", ".join(
            f"{g['shard']}" + (f" of {g['recipe']}" if len(s.get("recipes", [])) > 1 else "") for g in gone) + \
            " (no run record)"
    return text


def _error_text(r: dict[str, Any]) -> str:
    e = r.get("error")
    if isinstance(e, dict):
        return str(e.get("message") or "")
    return str(e or "")


def summary_table(s: dict[str, Any]) -> str:
    rows = s["jobs"]
    shown = rows if len(rows) <= TABLE_ROWS else [r for r in rows if r.get("status") != "succeeded"][:TABLE_ROWS]
    from .budget import cost_cell, cost_lines

    head = ("JOB", "KIND", "STATUS", "FILES", "TIME", "COST", "ERROR")
    data = []
    for r in shown:
        status = r.get("status", "")
        if r.get("resumed"):
            status += " (resumed)"
        err = _error_text(r).splitlines()[0] if _error_text(r) else ""
        data.append((r["id"], str(r.get("kind", "")), status, str(len(r.get("outputs") or [])),
                     _dur(r.get("duration")), cost_cell(r), err[:100]))
    widths = [max([len(h)] + [len(d[i]) for d in data]) for i, h in enumerate(head)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(head, widths)).rstrip()]
    for d in data:
        lines.append("  ".join(c.ljust(w) for c, w in zip(d, widths)).rstrip())
    if len(shown) < len(rows):
        lines.append(f"(showing the {len(shown)} jobs that did not succeed of {len(rows)})")
    lines.append(headline(s))
    lines.extend(cost_lines(s))
    return "\n".join(lines)


def _md(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ").replace("\r", " ")


def summary_markdown(s: dict[str, Any], title: str | None = None) -> str:
    names = ", ".join(f"`{n}`" for n in s.get("recipes", []) if n) or "recipe"
    icon = "✅" if not s.get("failed_jobs") and not s.get("missing_shards") else "❌"
    from .budget import cost_cell, cost_lines

    lines = [f"### {icon} sogni recipe {title or names}", "", f"**{headline(s)}**", ""]
    lines += [f"**{c}**" for c in cost_lines(s)] + ([""] if cost_lines(s) else [])
    rows = s["jobs"]
    shown = rows if len(rows) <= MARKDOWN_ROWS else [r for r in rows if r.get("status") != "succeeded"][:MARKDOWN_ROWS]
    lines.append("| Job | Kind | Status | Files | Time | Cost | Error |")
    lines.append("|---|---|---|---|---|---|---|")
    for r in shown:
        status = r.get("status", "") + (" (resumed)" if r.get("resumed") else "")
        files = ", ".join(f"`{_md(o.get('path'))}`" for o in (r.get("outputs") or [])[:4])
        more = len(r.get("outputs") or []) - 4
        if more > 0:
            files += f" +{more}"
        lines.append(f"| `{_md(r['id'])}` | {_md(r.get('kind', ''))} | {_md(status)} | {files} | "
                     f"{_dur(r.get('duration'))} | {_md(cost_cell(r))} | {_md(_error_text(r)[:200])} |")
    if len(shown) < len(rows):
        lines.append("")
        lines.append(f"_{len(rows) - len(shown)} succeeded jobs not listed._")
    return "\n".join(lines) + "\n"


def append_step_summary(markdown: str, env: dict[str, str] | None = None) -> None:
    """Append to ``$GITHUB_STEP_SUMMARY`` when it is set (GitHub Actions)."""
    env = os.environ if env is None else env
    target = env.get("GITHUB_STEP_SUMMARY")
    if not target:
        return
    try:
        with open(target, "a", encoding="utf-8") as fh:
            fh.write(markdown + "\n")
    except OSError:
        pass
