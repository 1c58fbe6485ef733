"""``sogni logs``: what was logged — list, search, show, files, remove, where."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Optional

import typer

from ..core.errors import UsageError
from ..core.term import clean_text, err, warn
from ..render.output import out, out_json, out_jsonl
from ._common import make_app

EPILOG = """\b
Examples:
  sogni logs                          (the latest 10 entries)
  sogni logs -n 50 --kind image
  sogni logs -q lighthouse            (full-text search over prompts and replies)
  sogni logs --cid 18c3f2a9b01d4e     (one conversation)
  sogni logs show 42 --json
  sogni logs files --workflow wf_123
  sogni logs rm --older-than 90d
"""

app = make_app("The log of chats, media jobs and recipe runs (logs.db).", epilog=EPILOG,
               invoke_without_command=True)

_REL = re.compile(r"^(\d+(?:\.\d+)?)\s*([smhdw])$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_when(text: str, flag: str) -> str:
    """``30m``, ``2h``, ``7d``, ``1w`` ago, or an ISO date/time (UTC) -> the ISO UTC time stored in the log."""
    import datetime as dt

    t = text.strip()
    m = _REL.match(t.lower())
    if m:
        when = dt.datetime.now(dt.timezone.utc) - dt.timedelta(seconds=float(m.group(1)) * _UNITS[m.group(2)])
    else:
        try:
            when = dt.datetime.fromisoformat(t.replace("Z", "+00:00"))
        except ValueError:
            raise UsageError(f"Invalid {flag} {text!r}.", hint="Use a duration like 30m, 12h, 7d, 2w, or a date "
                             "like 2026-01-31 or 2026-01-31T08:00 (UTC).") from None
        if when.tzinfo is None:
            when = when.replace(tzinfo=dt.timezone.utc)
    return when.astimezone(dt.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _filters(kind, model, since, cid, workflow, text, limit=None, before=None):
    from ..core.history import Filters
    from ..core.presets import resolve_model

    from ..core.config import config_dir

    return Filters(kind=kind, model=resolve_model(model, config_dir()) if model else None,
                   since=parse_when(since, "--since") if since else None, cid=cid, workflow=workflow,
                   text=text, limit=limit, before=before)


def open_store(*, must_exist: bool = False, write: bool = False):
    """The log for reading (None when there is none yet); a newer schema is read-only with a warning."""
    from ..core import history

    path = history.db_path()
    if not path.exists() and not history.journal_path(path).exists():
        if must_exist:
            raise UsageError(f"There is no log yet at {path}.")
        return None
    try:
        store = history.Store.open(path, create=False)
    except history.LogUnavailable as exc:
        raise UsageError(f"Cannot read the log: {exc}.",
                         hint=f"Move {path} away to start a new log; nothing else depends on it.") from None
    warn_waiting(store)
    if store.read_only:
        warn(f"{path} was written by a newer sogni (schema {store.version}; this one knows "
             f"{history.SCHEMA_VERSION}): reading it as it is, never changing it.")
        if write:
            store.close()
            raise UsageError("The log is read-only for this version of sogni.", hint="Upgrade sogni.")
    return store


def warn_waiting(store) -> None:
    """Entries that could not be moved in from the journal stay there; say so once."""
    if store.fold_error:
        from ..core import history

        warn(f"entries waiting in {history.journal_path(store.path)} could not be moved into the log yet "
             f"({store.fold_error}); they stay there for the next reader.")


def _guard(fn):
    """sqlite errors while reading become one clear error line."""
    import sqlite3

    try:
        return fn()
    except sqlite3.Error as exc:
        raise UsageError(f"Cannot read the log: {exc}.") from None


def _snip(text: Any, width: int) -> str:
    s = " ".join(str(text or "").split())
    return s if len(s) <= width else s[: width - 1] + "\u2026"


def _line(e: dict[str, Any]) -> str:
    when = (e.get("ts") or "")[:19].replace("T", " ")
    what = e.get("command") or e.get("kind")
    who = e.get("model") or e.get("tool") or ""
    bits = [f"#{e['id']}", when, what]
    if who:
        bits.append(who)
    if e.get("cid"):
        bits.append(f"[{e['cid']}]")
    if e.get("workflow_id"):
        bits.append(f"wf:{e['workflow_id']}")
    if e.get("exit_code"):
        bits.append(f"exit {e['exit_code']}")
    text = _snip(e.get("prompt"), 60)
    if e.get("reply"):
        text += " \u2192 " + _snip(e.get("reply"), 60)
    return clean_text("  ".join(bits) + ("  " + text if text else ""))


def _with_artifacts(store, entries):
    for e in entries:
        full = store.get(e["id"])
        e["artifacts"] = full["artifacts"] if full else []
    return entries


@app.callback()
def logs(
    ctx: typer.Context,
    n: int = typer.Option(10, "-n", "--count", help="How many of the latest entries."),
    kind: Optional[str] = typer.Option(None, "--kind", help="chat, media, recipe, or a command (image, video, …).", show_default=False),
    model: Optional[str] = typer.Option(None, "--model", help="Only this model (an alias works too).", show_default=False),
    since: Optional[str] = typer.Option(None, "--since", help="Only since: 30m, 12h, 7d, 2w or an ISO date/time (UTC).", show_default=False),
    cid: Optional[str] = typer.Option(None, "--cid", help="Only this conversation.", show_default=False),
    workflow: Optional[str] = typer.Option(None, "--workflow", help="Only entries of this workflow id.", show_default=False),
    query: Optional[str] = typer.Option(None, "-q", "--query", help="Full-text search over prompts and replies.", show_default=False),
    as_json: bool = typer.Option(False, "--json", help="One JSON array."),
    jsonl: bool = typer.Option(False, "--jsonl", help="One JSON object per line."),
) -> None:
    """List the latest entries (oldest of them first), filtered and searched."""
    if ctx.invoked_subcommand:
        return
    if as_json and jsonl:
        raise UsageError("--json and --jsonl cannot be used together.")
    if n < 1:
        raise UsageError("-n must be at least 1.")
    f = _filters(kind, model, since, cid, workflow, query, limit=n)
    store = open_store()
    if store is None:
        entries: list[dict[str, Any]] = []
    else:
        try:
            if query and not store.has_fts:
                warn("this SQLite has no full-text search (FTS5): searching with LIKE instead, which is slower.")
            entries = _guard(lambda: store.query(f))
            if as_json or jsonl:
                entries = _guard(lambda: _with_artifacts(store, entries))
        finally:
            store.close()
    entries.reverse()
    if as_json:
        out_json(entries)
    elif jsonl:
        for e in entries:
            out_jsonl(e)
    else:
        for e in entries:
            out(_line(e))


@app.command()
def show(
    ident: str = typer.Argument(..., metavar="ID", help="An entry number, or a conversation id.", show_default=False),
    as_json: bool = typer.Option(False, "--json", help="The entry (or conversation) as JSON."),
    messages: bool = typer.Option(False, "--messages", help="Print the conversation's messages as JSON (for --messages)."),
) -> None:
    """Everything logged for one entry, or every turn of one conversation."""
    store = open_store(must_exist=True)
    try:
        if ident.lstrip("#").isdigit():
            e = _guard(lambda: store.get(int(ident.lstrip("#"))))
            if e is None:
                raise UsageError(f"No log entry #{ident.lstrip('#')}.", hint="See `sogni logs`.")
            turns = [e]
            if messages and e.get("cid"):
                turns = [t for t in _guard(lambda: store.conversation(e["cid"])) if t["id"] <= e["id"]]
        else:
            found, close = _guard(lambda: store.find_cid(ident))
            if found is None:
                hint = (f"Did you mean {close[0]!r}? " if close else "") + "See `sogni logs --kind chat`."
                raise UsageError(f"Unknown conversation {ident!r}.", hint=hint)
            turns = _guard(lambda: _with_artifacts(store, store.conversation(found)))
    finally:
        store.close()
    if messages:
        from ._memory import conversation_messages

        out_json(conversation_messages([t for t in turns if t["data"].get("complete")]))
        return
    if as_json:
        out_json(turns[0] if len(turns) == 1 and ident.lstrip("#").isdigit() else turns)
        return
    for i, e in enumerate(turns):
        if i:
            out("")
        _show_text(e)


def _show_text(e: dict[str, Any]) -> None:
    import json

    out(_line(e))
    for key in ("ts", "kind", "command", "cid", "model", "tool", "workflow_id", "exit_code", "duration", "cost"):
        if e.get(key) not in (None, ""):
            value = e[key] if not isinstance(e[key], (dict, list)) else json.dumps(e[key], ensure_ascii=False)
            out(clean_text(f"{key}: {value}"))
    if e.get("prompt"):
        out(clean_text(f"prompt: {e['prompt']}"))
    if e.get("reply"):
        out(clean_text(f"reply: {e['reply']}"))
    for a in e.get("artifacts") or []:
        out(clean_text(f"file: {a.get('path') or a.get('url')} ({a.get('bytes')} bytes, sha256 {a.get('sha256')})"))
    data = {k: v for k, v in (e.get("data") or {}).items() if k != "messages"}
    if data:
        out(clean_text("data: " + json.dumps(data, ensure_ascii=False)))


@app.command()
def path() -> None:
    """Print where the log is (SOGNI_LOGS_DB overrides)."""
    from ..core import history

    out(str(history.db_path()))


@app.command()
def files(
    n: int = typer.Option(20, "-n", "--count", help="How many of the latest files."),
    kind: Optional[str] = typer.Option(None, "--kind", help="chat, media, recipe, or a command.", show_default=False),
    model: Optional[str] = typer.Option(None, "--model", show_default=False),
    since: Optional[str] = typer.Option(None, "--since", show_default=False),
    cid: Optional[str] = typer.Option(None, "--cid", show_default=False),
    workflow: Optional[str] = typer.Option(None, "--workflow", show_default=False),
    query: Optional[str] = typer.Option(None, "-q", "--query", help="Files of entries matching this text.", show_default=False),
    as_json: bool = typer.Option(False, "--json", help="One JSON array."),
) -> None:
    """Saved files, newest last, and whether each is still there."""
    f = _filters(kind, model, since, cid, workflow, query, limit=n)
    store = open_store()
    rows: list[dict[str, Any]] = []
    if store is not None:
        try:
            rows = _guard(lambda: store.artifacts(f))
        finally:
            store.close()
    rows.reverse()
    for r in rows:
        r["exists"] = bool(r.get("path")) and Path(r["path"]).is_file()
    if as_json:
        out_json([{k: r.get(k) for k in ("entry_id", "ts", "command", "path", "exists", "bytes", "sha256", "url",
                                         "content_type", "workflow_id")} for r in rows])
        return
    for r in rows:
        mark = "ok  " if r["exists"] else "gone"
        out(clean_text(f"{mark}  {r.get('path') or r.get('url')}  ({r.get('bytes')} bytes)  #{r['entry_id']}"))


@app.command()
def rm(
    kind: Optional[str] = typer.Option(None, "--kind", show_default=False),
    model: Optional[str] = typer.Option(None, "--model", show_default=False),
    since: Optional[str] = typer.Option(None, "--since", show_default=False),
    cid: Optional[str] = typer.Option(None, "--cid", show_default=False),
    workflow: Optional[str] = typer.Option(None, "--workflow", show_default=False),
    query: Optional[str] = typer.Option(None, "-q", "--query", show_default=False),
    older_than: Optional[str] = typer.Option(None, "--older-than", help="Entries older than 30d, 12h, … or a date.", show_default=False),
    all_: bool = typer.Option(False, "--all", help="Every entry (needed when no filter is given)."),
) -> None:
    """Remove entries (and their file records; the files themselves stay)."""
    f = _filters(kind, model, since, cid, workflow, query,
                 before=parse_when(older_than, "--older-than") if older_than else None)
    if not f.any() and not all_:
        raise UsageError("Say what to remove: a filter (--older-than, --kind, --cid, …) or --all.")
    store = open_store(write=True)
    if store is None:
        err("Removed 0 entries.")
        return
    try:
        import sqlite3

        try:
            n = store.remove(store.ids(f))
        except sqlite3.Error as exc:
            raise UsageError(f"Cannot change the log: {exc}.") from None
    finally:
        store.close()
    err(f"Removed {n} entr{'y' if n == 1 else 'ies'}.")
