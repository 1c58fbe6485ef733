"""What the chat and media commands share with the log: presets and model aliases applied to a request,
conversations continued from the log, the entry each command fills in from its events, and the choice
between raw text and Markdown on a terminal."""

from __future__ import annotations

import json
import os
import time
from typing import Any

from ..core import history
from ..core.errors import UsageError
from ..core.presets import PRESET_KEYS, get_preset, resolve_model

#: ChatRequest field -> the `sogni chat` parameter that sets it (where the names differ).
PARAM_OF = {"template_kwargs": "template_kwarg"}
CONTINUITY_TOOL_CHARS = 6000
CONTINUITY_WORKFLOW_CHARS = 2000
MAX_RECORD_BYTES = 256 * 1024 * 1024  # the most of a run record read back for the log


def _given(ctx: Any, param: str) -> bool:
    """True when the user set ``param`` on the command line (or through its environment variable)."""
    from ..core.options import parameter_source

    return parameter_source(ctx, param) in ("COMMANDLINE", "ENVIRONMENT")


def _cost_from(*docs: Any) -> Any:
    found: dict[str, Any] = {}
    for doc in docs:
        if isinstance(doc, dict):
            for key, value in doc.items():
                low = key.lower()
                if ("cost" in low or "billing" in low or "capacity_units" in low) and value is not None:
                    found[key] = value
    return found or None


# ----------------------------------------------------------------------------------------- chat


class ChatMemory:
    def __init__(self, entry: history.Entry, render: bool | None, history_msgs: list[dict[str, Any]],
                 settings: Any, no_log: bool):
        self.entry = entry
        self.render = render
        self.history = history_msgs
        self.settings = settings
        self.no_log = no_log
        self.logged = False

    @property
    def cid(self) -> str | None:
        return self.entry.cid if self.logged else None

    def view(self, view: Any) -> Any:
        """The view the reply goes through: Markdown on a terminal when rendering is on, else ``view``."""
        from ..core.term import stdout_is_tty

        if view.mode == "text" and (self.render if self.render is not None else stdout_is_tty()):
            from ..render.chat_markdown import MarkdownChatView

            view = MarkdownChatView(view)
        view.handle = self.entry.tee(view.handle)
        history.track(self.entry, self.settings, self.no_log)  # the request goes out next
        self.logged = history.is_logged(self.entry)
        return view

    def finish(self, result: Any, req: Any, quiet: bool = False) -> None:
        """The reply is in: fill the entry from the result; name the conversation on stderr."""
        e = self.entry
        e.reply = result.text
        served = (result.completion or {}).get("model")
        if served and served != e.model:
            e.data["served_model"] = served
        e.model = e.model or served
        new = [m for m in result.messages if not any(m is h for h in self.history)]
        e.data["messages"] = new
        e.data["complete"] = True
        e.data["finish_reason"] = result.finish_reason
        if result.usage:
            e.data["usage"] = result.usage
        if e.keep_reasoning and result.reasoning:
            e.data["reasoning"] = result.reasoning
        hosted = {k: result.extras[k] for k in ("creative_workflows", "sogni_tool_results") if result.extras.get(k)}
        if hosted:
            e.data["hosted"] = hosted
        e.cost = _cost_from(result.usage, result.extras)
        try:
            from ..api.chat import build_chat_body

            body = build_chat_body(req, [])
            body.pop("messages", None)
            e.data["options"] = body
        except Exception:  # noqa: BLE001 - the options are a courtesy
            pass
        if self.logged and not quiet:
            from ..core.term import err

            err(f"Conversation: {e.cid}")

    def annotate(self, doc: dict[str, Any]) -> None:
        if self.cid:
            doc["conversation_id"] = self.cid


def prepare_chat(ctx: Any, settings: Any, req: Any, *, cont: bool, cid: str | None, preset: str | None,
                 no_log: bool, messages: str | None, show_thinking: bool, render: bool | None) -> ChatMemory:
    """Apply the preset and model aliases to ``req``, load the conversation it continues, start its entry."""
    cdir = settings.config_dir
    if preset:
        _apply_preset(ctx, req, get_preset(cdir, preset))
    past: list[dict[str, Any]] = []
    conv_id = None
    if cont or cid:
        if messages:
            raise UsageError("--messages cannot be combined with -c/--cid: the conversation comes from the log.",
                             hint="Export one with `sogni chat --cid ID --save-messages FILE`.")
        conv_id, turns = _load_conversation(cid)
        past = conversation_messages(turns)
        if req.system:
            past = [m for m in past if m.get("role") != "system"]
        if not _given(ctx, "model") and not (preset and get_preset(cdir, preset).get("model")):
            last_model = next((t.get("model") for t in reversed(turns) if t.get("model")), None)
            req.model = last_model or req.model
        req.messages = past
    req.model = resolve_model(req.model, cdir)
    entry = history.Entry("chat", command="chat", cid=conv_id or history.new_cid(), model=req.model,
                          prompt=req.prompt)
    entry.keep_reasoning = show_thinking
    return ChatMemory(entry, render, past, settings, no_log)


def _apply_preset(ctx: Any, req: Any, values: dict[str, Any]) -> None:
    for key in PRESET_KEYS:
        if key not in values or _given(ctx, PARAM_OF.get(key, key)):
            continue
        value = values[key]
        if key == "response_format" and isinstance(value, str):
            from ..api.chat import response_format_from

            value = response_format_from(value)
        elif key == "template_kwargs":
            value = {**dict(value or {}), **(req.template_kwargs or {})}
        setattr(req, key, value)


def _load_conversation(cid: str | None) -> tuple[str, list[dict[str, Any]]]:
    path = history.db_path()
    try:
        store = history.Store.open(path, create=False)
    except history.LogUnavailable as exc:
        if cid:
            raise UsageError(f"Unknown conversation {cid!r}: {exc}.") from None
        raise UsageError("No earlier conversation to continue.", hint='Start one: sogni chat "Hello"') from None
    from .logs import warn_waiting

    warn_waiting(store)
    try:
        if cid:
            found, close = store.find_cid(cid)
            if found is None:
                hint = (f"Did you mean {close[0]!r}? " if close else "") + "See `sogni logs --kind chat`."
                raise UsageError(f"Unknown conversation {cid!r}.", hint=hint)
        else:
            found = store.latest_cid()
            if found is None:
                raise UsageError("No earlier conversation to continue.", hint='Start one: sogni chat "Hello"')
        turns = [t for t in store.conversation(found) if t["data"].get("complete")]
        if not turns:
            raise UsageError(f"Conversation {found} has no finished turn to continue.")
        return found, turns
    except Exception as exc:
        import sqlite3

        if isinstance(exc, sqlite3.Error):
            raise UsageError(f"Cannot read the log {path}: {exc}") from None
        raise
    finally:
        store.close()


def _unkept_image(part: dict[str, Any]) -> dict[str, Any]:
    url = ((part.get("image_url") or {}).get("url") or "") if isinstance(part.get("image_url"), dict) else ""
    if url.startswith("data:") and ";sha256=" in url:
        media = url[5:].split(";", 1)[0]
        size = url.rsplit("bytes=", 1)[-1]
        return {"type": "text", "text": f"[an image sent earlier ({media}, {size} bytes); not kept in the log]"}
    return part


def continuity_note(hosted: dict[str, Any]) -> str:
    """What an assistant turn that ran hosted tools carries forward: its tool results (with the indices later
    tools use) and its workflow references, as JSON the model can read."""
    parts = []
    if hosted.get("sogni_tool_results"):
        text = json.dumps(hosted["sogni_tool_results"], ensure_ascii=False)[:CONTINUITY_TOOL_CHARS]
        parts.append(f"Sogni tool results for continuity: {text}")
    if hosted.get("creative_workflows"):
        refs = [{k: w.get(k) for k in ("workflowId", "status") if w.get(k)} for w in hosted["creative_workflows"]
                if isinstance(w, dict)]
        parts.append("Creative workflow references: " + json.dumps(refs, ensure_ascii=False)[:CONTINUITY_WORKFLOW_CHARS])
    return "\n\n".join(parts)


def conversation_messages(turns: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The messages of logged turns, ready to send again."""
    out: list[dict[str, Any]] = []
    for t in turns:
        msgs = [dict(m) for m in t["data"].get("messages") or [] if isinstance(m, dict)]
        for m in msgs:
            if isinstance(m.get("content"), list):
                m["content"] = [_unkept_image(p) if isinstance(p, dict) else p for p in m["content"]]
        note = continuity_note(t["data"].get("hosted") or {})
        if note:
            last = next((m for m in reversed(msgs) if m.get("role") == "assistant"), None)
            if last is None:
                msgs.append({"role": "assistant", "content": note})
            else:
                last["content"] = f"{last.get('content') or ''}\n\n{note}".strip()
        out.extend(msgs)
    return out


# ----------------------------------------------------------------------------------------- media


def media_entry(settings: Any, kind: str, job: Any, no_log: bool) -> history.Entry:
    """The entry of a media command: tool, arguments and model now; workflow and files from its events."""
    args = dict(job.arguments or {})
    model = next((args[k] for k in ("model", "modelId", "model_id") if isinstance(args.get(k), str)), None)
    entry = history.begin(settings, "media", command=kind, no_log=no_log, tool=job.tool, model=model,
                          prompt=job.prompt)
    entry.data["arguments"] = args
    entry.data["inputs"] = [i.path for i in job.inputs]
    entry.data["route"] = job.route
    return entry


def log_wants_hashes(entry: history.Entry) -> bool:
    """Saved files get a sha256 when they are logged."""
    return history.is_logged(entry)


def media_result(entry: history.Entry, result: Any) -> None:
    entry.workflow_id = result.workflow_id or entry.workflow_id
    entry.data["status"] = result.status
    if result.texts:
        entry.reply = "\n\n".join(result.texts)
    if result.urls:
        entry.data["urls"] = [u.split("?", 1)[0] for u in result.urls]
    if result.failed:
        entry.data["failed"] = [why for _, why in result.failed]
    for s in result.saved:
        entry.add_artifact(path=str(s.path), url=s.url or s.ref.url, bytes=s.bytes, sha256=s.sha256,
                           content_type=s.content_type, workflow_id=result.workflow_id)
    entry.cost = _cost_from(result.record or {}, result.data or {})


def resolve_media_model(settings: Any, fields: dict[str, Any]) -> None:
    if fields.get("model"):
        fields["model"] = resolve_model(fields["model"], settings.config_dir)




# ----------------------------------------------------------------------------------------- recipes


#: Recipe job entries written to the log at a time (the rest of the run's entries are not held meanwhile).
JOB_BATCH = 100


class RecipeLog:
    """Around ``recipe run``: afterwards, one entry per job that ended (from the lines the run added to its
    run record) and one for the run with its totals. Written by the exit-code funnel, like every entry."""

    def __init__(self, settings: Any, file: Any, plan: Any, output_dir: Any, no_log: bool):
        from pathlib import Path

        from ..recipes.report import record_path

        self.settings, self.file, self.plan, self.no_log = settings, str(file), plan, no_log
        self.out_root = Path(output_dir)
        self.record = record_path(self.out_root, plan.name)
        try:
            self.offset = self.record.stat().st_size
        except OSError:
            self.offset = 0

    def __enter__(self) -> "RecipeLog":
        self.run = history.Entry("recipe", command="recipe", prompt=self.file)
        return self

    def __exit__(self, *exc: Any) -> None:
        if not history.enabled(self.settings, self.no_log):
            return
        try:
            self._jobs()
        except Exception as err:  # noqa: BLE001 - the log never fails a run
            history.warn_unlogged(history.db_path(self.settings.config_dir), err)
        self.run.duration = time.monotonic() - self.run.started
        history.track(self.run, self.settings, self.no_log)  # after its jobs; the funnel adds the exit code

    def _write(self, entries: list[history.Entry]) -> None:
        if not entries or getattr(self.settings, "dry_run", False):
            return
        path = history.db_path(self.settings.config_dir)
        try:
            history.write(path, entries)
        except Exception as err:  # noqa: BLE001 - the log never fails a run
            history.warn_unlogged(path, err)

    def _lines(self, start: int) -> list[dict[str, Any]]:
        """The last line of each job from ``start`` on (``started`` lines left out)."""
        import stat

        last: dict[str, dict[str, Any]] = {}
        # Line by line: only the last line of each job is kept, never the whole record (a 1,000-job run's
        # record is megabytes, and asking for MAX_RECORD_BYTES at once reserves that much up front).
        try:
            with open(self.record, "rb") as fh:
                if not stat.S_ISREG(os.fstat(fh.fileno()).st_mode):
                    return []  # not a run record one can read back (a device, a pipe)
                fh.seek(start)
                left = MAX_RECORD_BYTES
                for raw in fh:
                    left -= len(raw)
                    if left < 0:
                        break
                    try:
                        rec = json.loads(raw.decode("utf-8", "replace"))
                    except ValueError:
                        continue
                    if isinstance(rec, dict) and rec.get("status") != "started" and rec.get("id"):
                        last[str(rec["id"])] = rec
        except OSError:
            return []
        return list(last.values())

    def _fields(self, uid: str, outputs: dict[str, Any]) -> dict[str, Any]:
        """The job's fields as it ran them (templates filled in from the run record's outputs)."""
        from ..recipes import bridge
        from ..recipes.expand import render_instance

        pj = self.plan.by_uid.get(uid)
        if pj is None:
            return {}
        try:
            fields = render_instance(self.plan.expanded, pj.inst, outputs) or pj.fields
            return bridge.with_profile_defaults(pj.kind, fields, self.settings)
        except Exception:  # noqa: BLE001 - a job that could not render logs its plan-time fields
            return dict(pj.fields)

    def _jobs(self) -> None:
        from ..recipes.expand import Outputs

        outputs = {r["id"]: Outputs(text=r.get("text") or "", workflow=r.get("workflow_id"),
                                    files=[str((self.out_root / o["path"]).resolve()) for o in r.get("outputs") or []])
                   for r in self._lines(0) if r.get("status") == "succeeded"}
        totals: dict[str, int] = {}
        # Each job's entry is complete (its own exit code and duration come from the record), so entries are
        # written in batches as they are made instead of all being held until the process ends.
        batch: list[history.Entry] = []
        for rec in self._lines(self.offset):
            totals[rec["status"]] = totals.get(rec["status"], 0) + 1
            fields = self._fields(rec["id"], outputs)
            kind = "chat" if rec.get("kind") == "chat" else "media"
            error = rec.get("error") or {}
            e = history.Entry(kind, command=rec.get("kind"), model=fields.get("model") if isinstance(fields.get("model"), str)
                              else None, tool=fields.get("name") if rec.get("kind") == "tool" else None,
                              workflow_id=rec.get("workflow_id"), prompt=fields.get("prompt") or fields.get("text"),
                              reply=rec.get("text"), exit_code=int(error.get("exit_code") or 0) if error else 0,
                              duration=rec.get("duration"))
            e.data = {"recipe": self.plan.name, "job": rec["id"], "status": rec["status"], "matrix": rec.get("matrix"),
                      "arguments": fields, "error": error.get("message")}
            for o in rec.get("outputs") or []:
                e.add_artifact(path=str(self.out_root / o["path"]), bytes=o.get("bytes"), sha256=o.get("sha256"),
                               workflow_id=rec.get("workflow_id"))
            if e.duration is None:
                e.duration = 0.0
            batch.append(e)
            if len(batch) >= JOB_BATCH:
                self._write(batch)
                batch = []
        self._write(batch)
        self.run.data = {"file": self.file, "recipe": self.plan.name, "record": str(self.record),
                         "output_dir": str(self.out_root), "jobs": len(self.plan.jobs), "totals": totals}
        self.run.reply = ", ".join(f"{n} {s}" for s, n in sorted(totals.items()))
