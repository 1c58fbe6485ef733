"""The log (logs.db), `sogni logs`, continuing conversations, presets and model aliases, from the outside."""

from __future__ import annotations

import base64
import hashlib
import json
import sqlite3
import sys
from pathlib import Path

import pytest
from pytest_httpx import IteratorStream

from .conftest import BASE_URL, CANARY_KEY, chunk, sse_body

CHAT_URL = f"{BASE_URL}/v1/chat/completions"


def reply(httpx_mock, text, usage=None):
    chunks = [chunk(text, finish="stop")]
    if usage:
        chunks.append({"id": "c", "choices": [], "usage": usage})
    httpx_mock.add_response(url=CHAT_URL, method="POST", stream=IteratorStream([sse_body(chunks)]),
                            headers={"content-type": "text/event-stream"})


def bodies(httpx_mock):
    return [json.loads(r.content) for r in httpx_mock.get_requests() if r.url.path == "/v1/chat/completions"]


def db(tmp_path) -> Path:
    return tmp_path / "config" / "logs.db"


def moved_in(cli):
    """Have a reader move the journal commands append to into logs.db."""
    assert cli("logs", "-n", "1").exit_code == 0


def entries(cli, *args):
    res = cli("logs", "--json", "-n", "1000", *args)
    assert res.exit_code == 0, res.stderr
    return json.loads(res.stdout)


def cid_of(res) -> str:
    line = [ln for ln in res.stderr.splitlines() if ln.startswith("Conversation: ")]
    assert line, res.stderr
    return line[-1].split(": ", 1)[1]


# ----------------------------------------------------------------------------------------- what is logged


def test_chat_logged_with_messages_reply_model_options_usage(cli, env_key, httpx_mock):
    reply(httpx_mock, "Hello!", usage={"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5})
    res = cli("chat", "Hi there", "-m", "qwen-x", "--temperature", "0.3", "-s", "be kind")
    assert res.exit_code == 0, res.stderr
    cid = cid_of(res)
    [e] = entries(cli)
    assert (e["kind"], e["command"], e["cid"], e["model"], e["exit_code"]) == ("chat", "chat", cid, "qwen-x", 0)
    assert e["prompt"] == "Hi there" and e["reply"] == "Hello!"
    assert e["data"]["messages"] == [{"role": "system", "content": "be kind"}, {"role": "user", "content": "Hi there"},
                                     {"role": "assistant", "content": "Hello!"}]
    opts = e["data"]["options"]
    assert (opts["model"], opts["stream"], opts["temperature"]) == ("qwen-x", True, 0.3) and "messages" not in opts
    assert e["data"]["usage"]["total_tokens"] == 5
    assert e["duration"] >= 0


def test_json_output_carries_the_conversation_id(cli, env_key, httpx_mock):
    reply(httpx_mock, "A")
    res = cli("chat", "q", "--json")
    doc = json.loads(res.stdout)
    assert doc["conversation_id"] == cid_of(res) == entries(cli)[0]["cid"]


def test_failed_chat_logged_with_its_exit_code(cli, env_key, httpx_mock):
    httpx_mock.add_response(url=CHAT_URL, method="POST", status_code=400, json={"error": {"message": "bad model"}})
    res = cli("chat", "q", "-m", "nope")
    assert res.exit_code == 4
    [e] = entries(cli)
    assert e["exit_code"] == 4 and e["prompt"] == "q" and not e["data"].get("complete")


def test_reasoning_kept_only_when_shown(cli, env_key, httpx_mock):
    chunks = [chunk("<think>plan A</think>Four", finish="stop")]
    for _ in range(2):
        httpx_mock.add_response(url=CHAT_URL, method="POST", stream=IteratorStream([sse_body(chunks)]))
    cli("chat", "2+2")
    cli("chat", "2+2", "--show-thinking")
    hidden, shown = entries(cli)
    assert "reasoning" not in hidden["data"] and "plan A" not in json.dumps(hidden)
    assert shown["data"]["reasoning"] == "plan A"


def test_a_prompt_with_a_unicode_line_separator_survives_the_move_into_the_log(cli, env_key, httpx_mock):
    """The journal is split into entries at newlines only: U+2028 (written as is) is part of the text."""
    reply(httpx_mock, "two lines")
    assert cli("chat", "first\u2028second\x85third").exit_code == 0
    [e] = entries(cli)
    assert e["prompt"] == "first\u2028second\x85third" and e["reply"] == "two lines"


def test_keys_and_data_uris_never_stored(cli, env_key, httpx_mock, tmp_path):
    from PIL import Image

    img = tmp_path / "p.png"
    Image.new("RGB", (8, 8), (1, 2, 3)).save(img)
    reply(httpx_mock, "I saw it")
    res = cli("chat", f"my key is {CANARY_KEY}", "-i", str(img))
    assert res.exit_code == 0, res.stderr
    sent = bodies(httpx_mock)[0]["messages"][0]["content"][1]["image_url"]["url"]
    raw = base64.b64decode(sent.split(",", 1)[1])
    journal = b"".join(p.read_bytes() for p in db(tmp_path).parent.glob("logs.db*"))
    assert b"my key is ***" in journal
    assert CANARY_KEY.encode() not in journal and sent.split(",", 1)[1][:40].encode() not in journal
    [e] = entries(cli)
    stored = b"".join(p.read_bytes() for p in db(tmp_path).parent.glob("logs.db*"))
    assert CANARY_KEY.encode() not in stored and sent.split(",", 1)[1][:40].encode() not in stored
    assert e["prompt"] == "my key is ***"
    part = e["data"]["messages"][0]["content"][1]["image_url"]["url"]
    assert part == f"{sent.split(';')[0]};sha256={hashlib.sha256(raw).hexdigest()};bytes={len(raw)}"


@pytest.mark.parametrize("how", ["flag", "env", "profile"])
def test_logging_can_be_turned_off(cli, env_key, httpx_mock, tmp_path, monkeypatch, how):
    reply(httpx_mock, "ok")
    args = ["chat", "q"]
    if how == "flag":
        args.append("--no-log")
    elif how == "env":
        monkeypatch.setenv("SOGNI_NO_LOG", "1")
    else:
        assert cli("config", "set", "logs", "off").exit_code == 0
    res = cli(*args)
    assert res.exit_code == 0 and "Conversation" not in res.stderr
    assert not list(db(tmp_path).parent.glob("logs.db*"))


def test_logs_db_env_overrides_the_place(cli, env_key, httpx_mock, tmp_path, monkeypatch):
    monkeypatch.setenv("SOGNI_LOGS_DB", str(tmp_path / "elsewhere" / "my.db"))
    reply(httpx_mock, "ok")
    cli("chat", "q")
    assert cli("logs", "path").stdout.strip() == str(tmp_path / "elsewhere" / "my.db")
    assert [e["prompt"] for e in entries(cli)] == ["q"]
    assert (tmp_path / "elsewhere" / "my.db").exists() and not db(tmp_path).exists()


def test_dry_run_is_not_logged(cli, env_key, httpx_mock, tmp_path):
    assert cli("chat", "q", "--dry-run").exit_code == 0
    assert not list(db(tmp_path).parent.glob("logs.db*"))


# ----------------------------------------------------------------------------------------- bad logs.db


def test_corrupt_log_warns_and_the_chat_works(cli, env_key, httpx_mock, tmp_path):
    db(tmp_path).parent.mkdir(parents=True)
    db(tmp_path).write_bytes(b"this is not a database" * 100)
    reply(httpx_mock, "fine")
    res = cli("chat", "q")
    assert res.exit_code == 0 and res.stdout == "fine\n"
    assert "Warning: not logged" in res.stderr and "not a database" in res.stderr
    bad = cli("logs")
    assert bad.exit_code == 2 and "Cannot read the log" in bad.stderr


def test_locked_log_loses_nothing_and_the_chat_works(cli, env_key, httpx_mock, tmp_path, monkeypatch):
    reply(httpx_mock, "one")
    cli("chat", "first")
    moved_in(cli)
    monkeypatch.setenv("SOGNI_LOGS_WAIT", "0.05")
    holder = sqlite3.connect(db(tmp_path), isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        reply(httpx_mock, "two")
        res = cli("chat", "second")
        assert res.exit_code == 0 and res.stdout == "two\n" and "Warning" not in res.stderr
        listed = cli("logs")  # the reader cannot move the new entry in while the lock is held
        assert listed.exit_code == 0 and "first" in listed.stdout and "second" not in listed.stdout
        assert "could not be moved into the log yet (database is locked)" in listed.stderr
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert [e["prompt"] for e in entries(cli)] == ["first", "second"]


def test_newer_schema_is_read_only_never_downgraded(cli, env_key, httpx_mock, tmp_path):
    reply(httpx_mock, "one")
    cli("chat", "first")
    moved_in(cli)
    c = sqlite3.connect(db(tmp_path))
    c.execute("PRAGMA user_version=99")
    c.commit()
    c.close()
    reply(httpx_mock, "two")
    res = cli("chat", "second")
    assert res.exit_code == 0 and "newer sogni (schema 99" in res.stderr and "read-only" in res.stderr
    listed = cli("logs")
    assert listed.exit_code == 0 and "first" in listed.stdout and "second" not in listed.stdout
    assert "newer sogni" in listed.stderr
    assert cli("logs", "rm", "--all").exit_code == 2
    c = sqlite3.connect(db(tmp_path))
    assert c.execute("PRAGMA user_version").fetchone()[0] == 99
    assert c.execute("SELECT count(*) FROM entries").fetchone()[0] == 1


def test_migrates_a_log_without_a_schema_version(cli, env_key, httpx_mock, tmp_path):
    db(tmp_path).parent.mkdir(parents=True)
    sqlite3.connect(db(tmp_path)).close()  # an empty database file: version 0
    reply(httpx_mock, "ok")
    cli("chat", "q")
    moved_in(cli)
    c = sqlite3.connect(db(tmp_path))
    assert c.execute("PRAGMA user_version").fetchone()[0] >= 1
    assert c.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


# ----------------------------------------------------------------------------------------- continuing


def test_continue_sends_the_earlier_turns(cli, env_key, httpx_mock):
    reply(httpx_mock, "Paris.")
    first = cli("chat", "Capital of France?", "-s", "Be brief", "-m", "qwen-x")
    reply(httpx_mock, "About 2 million.")
    second = cli("chat", "-c", "And its population?")
    assert second.exit_code == 0, second.stderr
    assert cid_of(first) == cid_of(second)
    body = bodies(httpx_mock)[1]
    assert body["model"] == "qwen-x"
    assert body["messages"] == [
        {"role": "system", "content": "Be brief"}, {"role": "user", "content": "Capital of France?"},
        {"role": "assistant", "content": "Paris."}, {"role": "user", "content": "And its population?"}]


def test_cid_continues_that_conversation_even_by_prefix(cli, env_key, httpx_mock):
    reply(httpx_mock, "A1")
    a = cid_of(cli("chat", "conversation A"))
    reply(httpx_mock, "B1")
    cli("chat", "conversation B")
    reply(httpx_mock, "A2")
    res = cli("chat", "--cid", a[:-2], "more of A")
    assert res.exit_code == 0 and cid_of(res) == a
    assert [m["content"] for m in bodies(httpx_mock)[2]["messages"]] == ["conversation A", "A1", "more of A"]


def test_continue_without_a_conversation_is_exit_2(cli, env_key, httpx_mock):
    res = cli("chat", "-c", "and then?")
    assert res.exit_code == 2 and "No earlier conversation" in res.stderr
    reply(httpx_mock, "x")
    cli("chat", "first", "--no-exec")
    res = cli("chat", "--cid", "zzzz-not-there", "hi")
    assert res.exit_code == 2 and "Unknown conversation 'zzzz-not-there'" in res.stderr


def test_unknown_cid_suggests_a_close_one(cli, env_key, httpx_mock):
    reply(httpx_mock, "x")
    cid = cid_of(cli("chat", "first"))
    typo = cid[:-1] + ("0" if cid[-1] != "0" else "1")
    res = cli("chat", "--cid", typo, "hi")
    assert res.exit_code == 2 and f"Did you mean '{cid}'?" in res.stderr


def test_continue_with_messages_file_is_a_usage_error(cli, env_key, httpx_mock, tmp_path):
    reply(httpx_mock, "x")
    cli("chat", "first")
    f = tmp_path / "m.json"
    f.write_text("[]")
    res = cli("chat", "-c", "--messages", str(f), "hi")
    assert res.exit_code == 2 and "--messages cannot be combined" in res.stderr


def test_save_messages_exports_and_messages_imports_a_logged_conversation(cli, env_key, httpx_mock, tmp_path):
    reply(httpx_mock, "One.")
    cli("chat", "Count")
    reply(httpx_mock, "Two.")
    out = tmp_path / "convo.json"
    assert cli("chat", "-c", "Next", "--save-messages", str(out)).exit_code == 0
    saved = json.loads(out.read_text())
    assert [m["content"] for m in saved] == ["Count", "One.", "Next", "Two."]
    shown = cli("logs", "show", entries(cli)[0]["cid"], "--messages")
    assert json.loads(shown.stdout) == saved
    reply(httpx_mock, "Three.")
    imported = cli("chat", "--messages", str(out), "And next?")
    reply(httpx_mock, "Four.")
    cli("chat", "-c", "Last one")
    assert [m["content"] for m in bodies(httpx_mock)[3]["messages"]] == \
        ["Count", "One.", "Next", "Two.", "And next?", "Three.", "Last one"]
    assert cid_of(imported) != entries(cli)[0]["cid"]


def test_continued_images_are_not_resent(cli, env_key, httpx_mock, tmp_path):
    from PIL import Image

    img = tmp_path / "p.png"
    Image.new("RGB", (8, 8), (1, 2, 3)).save(img)
    reply(httpx_mock, "A dot.")
    cli("chat", "What is it?", "-i", str(img))
    reply(httpx_mock, "Yes.")
    cli("chat", "-c", "Sure?")
    first = bodies(httpx_mock)[1]["messages"][0]["content"]
    assert first[0] == {"type": "text", "text": "What is it?"}
    assert first[1]["type"] == "text" and "not kept in the log" in first[1]["text"]


# ----------------------------------------------------------------------------------------- sogni logs


def _seed(cli, httpx_mock, prompts):
    for p in prompts:
        reply(httpx_mock, f"re: {p}")
        cli("chat", p, "-m", "model-b" if "beta" in p else "model-a")


def test_logs_lists_the_latest_n_oldest_first(cli, env_key, httpx_mock):
    _seed(cli, httpx_mock, ["one", "two", "three"])
    res = cli("logs", "-n", "2")
    lines = res.stdout.splitlines()
    assert len(lines) == 2 and "two" in lines[0] and "three" in lines[1] and lines[1].startswith("#3")
    jl = cli("logs", "--jsonl").stdout.splitlines()
    assert [json.loads(x)["prompt"] for x in jl] == ["one", "two", "three"]


def test_logs_filters_and_full_text_search(cli, env_key, httpx_mock, tmp_path):
    _seed(cli, httpx_mock, ["a lighthouse at dusk", "beta test of gears", "lighthouse keeper diary"])
    assert [e["prompt"] for e in entries(cli, "-q", "lighthouse")] == ["a lighthouse at dusk", "lighthouse keeper diary"]
    assert [e["prompt"] for e in entries(cli, "-q", "re: beta")] == ["beta test of gears"]
    assert [e["prompt"] for e in entries(cli, "--model", "model-b")] == ["beta test of gears"]
    assert len(entries(cli, "--kind", "chat")) == 3 and entries(cli, "--kind", "image") == []
    assert len(entries(cli, "--since", "1h")) == 3 and entries(cli, "--since", "2999-01-01") == []
    cid = entries(cli)[1]["cid"]
    assert [e["prompt"] for e in entries(cli, "--cid", cid)] == ["beta test of gears"]
    bad = cli("logs", "--since", "yesterday-ish")
    assert bad.exit_code == 2 and "Invalid --since" in bad.stderr


def test_search_falls_back_to_like_without_fts5(cli, env_key, httpx_mock, tmp_path):
    _seed(cli, httpx_mock, ["find the needle here", "nothing"])
    moved_in(cli)
    c = sqlite3.connect(db(tmp_path))
    for stmt in ("DROP TRIGGER entries_ai", "DROP TRIGGER entries_ad", "DROP TABLE entries_fts"):
        c.execute(stmt)
    c.commit()
    c.close()
    res = cli("logs", "-q", "needle", "--json")
    assert res.exit_code == 0 and "no full-text search (FTS5)" in res.stderr
    assert [e["prompt"] for e in json.loads(res.stdout)] == ["find the needle here"]


def test_logs_show_path_and_rm(cli, env_key, httpx_mock, tmp_path):
    _seed(cli, httpx_mock, ["old one", "new one"])
    moved_in(cli)
    c = sqlite3.connect(db(tmp_path))
    c.execute("UPDATE entries SET ts = '2020-01-01T00:00:00.000Z' WHERE prompt = 'old one'")
    c.commit()
    c.close()
    show = cli("logs", "show", "1")
    assert show.exit_code == 0 and "prompt: old one" in show.stdout and "reply: re: old one" in show.stdout
    assert json.loads(cli("logs", "show", "2", "--json").stdout)["prompt"] == "new one"
    missing = cli("logs", "show", "99")
    assert missing.exit_code == 2
    assert cli("logs", "path").stdout.strip() == str(db(tmp_path))
    assert cli("logs", "rm").exit_code == 2
    res = cli("logs", "rm", "--older-than", "30d")
    assert res.exit_code == 0 and "Removed 1 entry." in res.stderr
    assert [e["prompt"] for e in entries(cli)] == ["new one"]
    assert cli("logs", "-q", "old").stdout == ""  # the search index forgot it too
    assert "Removed 1 entry." in cli("logs", "rm", "--all").stderr


def test_no_log_yet(cli, tmp_path):
    res = cli("logs")
    assert res.exit_code == 0 and res.stdout == ""
    assert cli("logs", "files").stdout == ""


# ----------------------------------------------------------------------------------------- media and recipes


def test_media_job_logged_with_files_hashes_and_workflow(cli, emu, tmp_cwd):
    res = cli("image", "a heron at dawn", "-n", "2", "-o", "out", "--seed", "7")
    assert res.exit_code == 0, res.stderr
    [e] = entries(cli)
    assert (e["kind"], e["command"], e["tool"], e["exit_code"]) == ("media", "image", "generate_image", 0)
    assert e["workflow_id"].startswith("wf_") and e["data"]["arguments"]["seed"] == 7
    files = json.loads(cli("logs", "files", "--json").stdout)
    assert len(files) == 2
    for f in files:
        p = Path(f["path"])
        assert f["exists"] and p.is_absolute()
        assert f["sha256"] == hashlib.sha256(p.read_bytes()).hexdigest() and f["bytes"] == p.stat().st_size
        assert "?" not in f["url"]
    Path(files[0]["path"]).unlink()
    text = cli("logs", "files").stdout.splitlines()
    assert text[0].startswith("gone") and text[1].startswith("ok")
    assert len(entries(cli, "--workflow", e["workflow_id"])) == 1
    assert cli("image", "x", "-o", "out", "--no-log").exit_code == 0 and len(entries(cli)) == 1


def test_recipe_run_logs_each_job_and_the_run(cli, emu, tmp_cwd):
    from .conftest import ONE_JOB_RECIPE

    Path("r.yaml").write_text(ONE_JOB_RECIPE)
    res = cli("recipe", "run", "r.yaml", "-o", "out")
    assert res.exit_code == 0, res.stderr
    run, job = sorted(entries(cli), key=lambda e: e["kind"] != "recipe")
    assert (job["kind"], job["command"], job["prompt"]) == ("media", "image", "a heron at dawn")
    assert job["artifacts"][0]["path"] == str((tmp_cwd / "out" / "heron.png").resolve())
    assert job["data"]["recipe"] == "one" and job["workflow_id"]
    assert run["kind"] == "recipe" and run["prompt"] == "r.yaml" and run["exit_code"] == 0
    assert run["data"]["totals"] == {"succeeded": 1}
    assert run["data"]["record"].endswith(".sogni-run/one.jsonl")
    assert [e["kind"] for e in entries(cli, "--kind", "recipe")] == ["recipe"]


# ----------------------------------------------------------------------------------------- presets, aliases


def test_preset_save_apply_flags_win(cli, env_key, httpx_mock, tmp_path):
    res = cli("preset", "save", "terse", "-s", "One sentence.", "-m", "qwen-x", "--temperature", "0.2",
              "--stop", "END", "--template-kwarg", "budget=64")
    assert res.exit_code == 0, res.stderr
    assert json.loads(cli("preset", "show", "terse").stdout) == {
        "system": "One sentence.", "model": "qwen-x", "temperature": 0.2, "stop": ["END"],
        "template_kwargs": {"budget": 64}}
    assert cli("preset", "list").stdout.startswith("terse  ")
    reply(httpx_mock, "a")
    reply(httpx_mock, "b")
    cli("chat", "--preset", "terse", "What is DNS?")
    cli("chat", "--preset", "terse", "--temperature", "0.9", "-m", "other", "A haiku")
    one, two = bodies(httpx_mock)
    one.pop("stream_options", None)
    assert one == {"model": "qwen-x", "messages": [{"role": "system", "content": "One sentence."},
                                                    {"role": "user", "content": "What is DNS?"}],
                   "stream": True, "temperature": 0.2, "stop": ["END"], "chat_template_kwargs": {"budget": 64}}
    assert (two["model"], two["temperature"]) == ("other", 0.9)
    assert cli("preset", "rm", "terse").exit_code == 0 and cli("preset", "list").stdout == ""


def test_preset_errors(cli, env_key, httpx_mock):
    assert cli("preset", "save", "p1", "-s", "x").exit_code == 0
    res = cli("chat", "--preset", "p2", "hi")
    assert res.exit_code == 2 and "Unknown preset 'p2'" in res.stderr and "Did you mean 'p1'?" in res.stderr
    assert cli("preset", "save", "bad", "--json").exit_code == 2
    assert "not a prompt" in cli("preset", "save", "bad", "-s", "x", "hello").stderr
    assert cli("preset", "save", "bad name", "-s", "x").exit_code == 2
    assert cli("preset", "rm", "p3").exit_code == 2


def test_alias_resolved_in_chat_media_presets_and_recipes(cli, env_key, httpx_mock, tmp_path):
    assert cli("alias", "set", "fast", "qwen3.6-35b-a3b-gguf-iq4xs").exit_code == 0
    assert cli("alias", "list").stdout == "fast  qwen3.6-35b-a3b-gguf-iq4xs\n"
    reply(httpx_mock, "a")
    cli("chat", "-m", "fast", "hi")
    assert bodies(httpx_mock)[0]["model"] == "qwen3.6-35b-a3b-gguf-iq4xs"
    cli("preset", "save", "quick", "-m", "fast")
    reply(httpx_mock, "b")
    cli("chat", "--preset", "quick", "hi")
    assert bodies(httpx_mock)[1]["model"] == "qwen3.6-35b-a3b-gguf-iq4xs"
    assert cli("alias", "set", "pic", "chroma1-hd").exit_code == 0
    dry = cli("image", "a cat", "--model", "pic", "--dry-run")
    assert dry.exit_code == 0 and '"chroma1-hd"' in dry.stdout and '"pic"' not in dry.stdout, dry.stderr
    recipe = tmp_path / "r.yaml"
    recipe.write_text("version: 1\nname: r\njobs:\n  - id: a\n    chat: {prompt: hi, preset: quick}\n"
                      "  - id: b\n    chat: {prompt: yo, model: fast, preset: quick, system: own}\n")
    plan = json.loads(cli("recipe", "plan", str(recipe), "--json").stdout)
    text = json.dumps(plan)
    assert text.count("qwen3.6-35b-a3b-gguf-iq4xs") >= 2 and '"fast"' not in text
    assert "own" in text
    assert cli("alias", "rm", "fast").exit_code == 0
    assert "Did you mean 'pic'" in cli("alias", "rm", "pix").stderr


# ----------------------------------------------------------------------------------------- rendering


def _plain(text: str) -> str:
    import re

    return re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", text)


def test_markdown_on_a_terminal_raw_in_a_pipe(cli, env_key, httpx_mock):
    md = "# Title\n\n- one\n- two\n\n```python\nx = 1\n```\n"
    for _ in range(3):
        reply(httpx_mock, md)
    piped = cli("chat", "q")
    assert piped.stdout == md
    term = _plain(cli("chat", "q", stdout_tty=True).stdout)
    assert "# Title" not in term and "Title" in term and "\u2022 one" in term and "```" not in term
    raw = cli("chat", "q", "--raw", stdout_tty=True)
    assert raw.stdout == md
    assert entries(cli)[0]["reply"] == md


def test_rendered_reply_escapes_control_characters(cli, env_key, httpx_mock):
    reply(httpx_mock, "hi \x1b]0;pwned\x07 \x1b[2J \u202e there")
    term = cli("chat", "q", stdout_tty=True).stdout
    assert "\x1b]0;" not in term and "\x07" not in term and "\x1b[2J" not in term and "\u202e" not in term
    assert "\\x1b]0;pwned\\x07" in _plain(term)


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX file modes")
def test_log_files_are_private(cli, env_key, httpx_mock, tmp_path):
    reply(httpx_mock, "x")
    cli("chat", "secret plans")
    journal = db(tmp_path).with_name("logs.db-journal.jsonl")
    assert journal.stat().st_mode & 0o777 == 0o600
    moved_in(cli)
    assert db(tmp_path).stat().st_mode & 0o777 == 0o600


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
def test_journal_on_a_device_is_a_warning(cli, env_key, httpx_mock, tmp_path):
    db(tmp_path).parent.mkdir(parents=True)
    db(tmp_path).with_name("logs.db-journal.jsonl").symlink_to("/dev/full")
    reply(httpx_mock, "fine")
    res = cli("chat", "q")
    assert res.exit_code == 0 and res.stdout == "fine\n"
    assert "Warning: not logged" in res.stderr and "not a regular file" in res.stderr
    listed = cli("logs")
    assert listed.exit_code == 0 and "could not be moved" in listed.stderr


def test_continuing_with_nothing_new_to_say_is_refused_before_anything_is_sent(cli, env_key, httpx_mock):
    reply(httpx_mock, "first answer")
    assert cli("chat", "--tools", "none", "first question").exit_code == 0
    before = len(httpx_mock.get_requests())
    res = cli("chat", "-c")
    assert res.exit_code == 2
    assert "give a prompt" in res.stderr and "Traceback" not in res.stderr
    assert len(httpx_mock.get_requests()) == before


def test_recipe_job_logged_with_the_prompt_it_took_from_the_job_it_needs(cli, emu, tmp_cwd):
    """The log renders a job's fields from the text of the job it needs, also when that job ran in an
    earlier run (a rerun of only the dependent job reads it back from the whole run record)."""
    Path("r.yaml").write_text(
        'version: 1\nname: chain\njobs:\n  - id: script\n    chat: {prompt: "Say hello", tools: none}\n'
        '  - id: pic\n    image: {prompt: "{{ jobs.script.text }} in ink", width: 64, height: 64}\n')
    assert cli("recipe", "run", "r.yaml", "-o", "out").exit_code == 0
    res = cli("recipe", "run", "r.yaml", "-o", "out", "--retry", "pic")
    assert res.exit_code == 0, res.stderr
    logged = entries(cli)
    assert sorted(e["prompt"] for e in logged if e["kind"] == "media") == ["Echo: Say hello in ink"] * 2
    assert sorted(e["data"]["job"] for e in logged if e["kind"] != "recipe") == ["pic", "pic", "script"]
    assert [e["data"]["totals"] for e in logged if e["kind"] == "recipe"] in (
        [{"succeeded": 1}, {"succeeded": 2}], [{"succeeded": 2}, {"succeeded": 1}])


def test_recipe_job_entries_are_written_in_batches_and_none_is_lost(cli, emu, tmp_cwd, monkeypatch):
    from sogni_cli.commands import _memory

    monkeypatch.setattr(_memory, "JOB_BATCH", 2)  # five jobs: three writes of the log journal
    Path("five.yaml").write_text(
        'version: 1\nname: five\nmatrix:\n  n: [1, 2, 3, 4, 5]\njobs:\n  - id: img\n    matrix: true\n'
        '    image: {prompt: "picture number {{ matrix.n }}", width: 64, height: 64}\n')
    res = cli("recipe", "run", "five.yaml", "-o", "out")
    assert res.exit_code == 0, res.stderr
    logged = entries(cli, "-n", "20")
    jobs = sorted(e["prompt"] for e in logged if e["kind"] == "media")
    assert jobs == [f"picture number {n}" for n in range(1, 6)]
    assert all(e["exit_code"] == 0 for e in logged)
    assert [e["data"]["totals"] for e in logged if e["kind"] == "recipe"] == [{"succeeded": 5}]
