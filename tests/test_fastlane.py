"""The fast lane parses ``sogni chat …`` and answers ``sogni --help`` exactly as the command-line framework
would, without loading it; anything it cannot take exactly goes to the framework."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest
import typer.main

import sogni_cli.commands.chat_body as chat_body
from sogni_cli import fastlane
from sogni_cli.app import app
from sogni_cli.core.options import GLOBAL_FLAGS, GLOBAL_VALUE_OPTIONS, GlobalOptions
from sogni_cli.fastlane_table import COMMANDS, ROOT

ROOT_DIR = Path(__file__).resolve().parent.parent


def framework_parse(monkeypatch, args: list[str]):
    """(params, names given on the command line, global options) as the framework hands them to the chat body;
    or the exit code when the framework stopped before the body (a usage error, help)."""
    seen: dict = {}

    def record(ctx, **params):
        seen["params"] = params
        seen["given"] = {n for n in params if ctx.get_parameter_source(n).name == "COMMANDLINE"}
        seen["globals"] = ctx.find_root().obj

    monkeypatch.setattr(chat_body, "run", record)
    command = typer.main.get_command(app)
    try:
        rv = command.main(args=list(args), prog_name="sogni", standalone_mode=False)
    except Exception as exc:  # noqa: BLE001 - the framework refused the command line
        return type(exc).__name__
    return (seen["params"], seen["given"], seen["globals"]) if seen else rv


def assert_same(monkeypatch, args: list[str]) -> bool:
    """The fast lane's parse of ``args`` equals the framework's (when the fast lane takes it); True if it did."""
    call = fastlane.parse(list(args))
    expected = framework_parse(monkeypatch, args)
    if call is None:
        return False
    assert isinstance(expected, tuple), (args, expected)
    params, given, globals_ = expected
    assert {k: repr(v) for k, v in call.params.items()} == {k: repr(v) for k, v in params.items()}, args
    assert call.given == given, args
    assert GlobalOptions(**call.globals) == globals_, args
    return True


def test_the_table_is_current():
    text = (ROOT_DIR / "sogni_cli" / "fastlane_table.py").read_text(encoding="utf-8")
    assert text == fastlane.build_table(), "stale: run python -m sogni_cli.fastlane --write"


def test_global_option_lists_match_the_root_command():
    takes_value = {n for n, (_, kind, _) in ROOT["options"].items() if kind != "flag"}
    flags = {n for n, (_, kind, _) in ROOT["options"].items() if kind == "flag"}
    assert takes_value == GLOBAL_VALUE_OPTIONS
    assert flags == GLOBAL_FLAGS


TAKEN = [
    ["chat", "hi"],
    ["chat"],
    ["chat", "-"],
    ["chat", "--", "-v is a flag"],
    ["chat", ""],
    ["chat", "--", "--"],
    ["chat", "-m", "--", "hi"],  # an option's value may look like an option
    ["chat", "hi", "-m", "m1", "-s", "be brief", "--temperature", "0.5", "--max-tokens", "12"],
    ["chat", "--stop", "a", "--stop", "b", "--template-kwarg", "k=1", "hi"],
    ["chat", "--think", "--no-think", "hi"],
    ["chat", "--no-stream", "--json", "hi"],
    ["chat", "--raw", "hi"],
    ["chat", "--render", "hi"],
    ["chat", "-i", "a.png", "--image", "-", "hi"],
    ["chat", "--function", "f.yaml", "--function=g.yaml", "hi"],
    ["chat", "-o", "out", "--on-exists", "skip", "--concurrency", "3", "hi"],
    ["chat", "--model=m2", "--system=", "hi"],
    ["chat", "-s", "-starts with a dash", "hi"],
    ["chat", "hi", "--dry-run"],
    ["--dry-run", "chat", "hi"],
    ["-q", "--timeout", "5", "--max-retries", "0", "chat", "hi"],
    ["--base-url", "http://127.0.0.1:9", "--api-key=sk-abcdefgh", "chat", "hi"],
    ["--profile", "work", "-v", "--no-color", "--emulator", "chat", "hi"],
    ["chat", "--timeout", "5", "hi", "-q"],  # global options after the command
    ["chat", "hi", "--timeout=7", "--profile", "p"],
    ["chat", "-c", "and then?"],
    ["chat", "--cid", "c1", "--preset", "terse", "--no-log", "more"],
    ["chat", "--durable", "--detach", "--approve-up-to", "5", "hi"],
    ["chat", "--stdin", "hi"],
    ["chat", "--no-stdin", "--save-messages", "c.json", "--messages", "m.json", "hi"],
    ["chat", "--tools", "none", "--no-exec", "--tool-choice", "auto", "--max-rounds", "2", "hi"],
    ["chat", "--safe-content-filter", "--billing-mode", "credits", "--token-type", "spark", "hi"],
    ["chat", "--temperature", "nan", "hi"],
    ["chat", "--max-tokens", " 12 ", "hi"],
    ["chat", "--response-format", "json", "--task-profile", "coding", "--developer", "d", "hi"],
]

REFUSED = [
    ["chat", "--help"],
    ["chat", "-h"],
    ["chat", "hi", "there"],  # one prompt only
    ["chat", "--max-tokens", "many", "hi"],
    ["chat", "--temperature", "warm", "hi"],
    ["chat", "--no-such-option", "hi"],
    ["chat", "-mfoo", "hi"],
    ["chat", "-qv", "hi"],
    ["chat", "hi", "-m"],
    ["chat", "--json=yes", "hi"],
    ["chat", "-o", "", "hi"],
    ["--version", "chat", "hi"],
    ["--timeout", "soon", "chat", "hi"],
    ["--no-such", "chat", "hi"],
    ["image", "a fox"],
    ["--help"],
    [],
]


@pytest.mark.parametrize("args", TAKEN, ids=lambda a: " ".join(a) or "-")
def test_the_fast_lane_parses_like_the_framework(monkeypatch, args):
    assert assert_same(monkeypatch, args), f"the fast lane should take {args}"


@pytest.mark.parametrize("args", REFUSED, ids=lambda a: " ".join(a) or "-")
def test_what_the_fast_lane_leaves_to_the_framework(args):
    assert fastlane.parse(list(args)) is None


def test_random_command_lines_parse_alike(monkeypatch):
    """Several hundred command lines made of every chat and global option, values of each kind (some of them
    invalid), prompts and ``--``: whatever the fast lane takes, it parses as the framework does."""
    rng = random.Random(20261204)
    chat_opts = list(COMMANDS["chat"]["options"].items())
    root_opts = list(ROOT["options"].items())
    values = {"str": ["x", "", "-dash", "a=b", "ünï"], "int": ["3", "-1", "x", "07"],
              "float": ["0.5", "1e3", "-2", "inf", "x"], "path": ["f.json", "dir/", "-", ""]}
    taken = 0
    for _ in range(400):
        words: list[str] = []
        for _ in range(rng.randint(0, 2)):
            name, (_, kind, _) = rng.choice(root_opts)
            words += [name] if kind == "flag" else [name, rng.choice(values[kind])]
        words.append("chat")
        for _ in range(rng.randint(0, 6)):
            roll = rng.random()
            if roll < 0.15:
                words.append(rng.choice(["hello", "-", "two words"]))
            elif roll < 0.2:
                name, (_, kind, _) = rng.choice(root_opts)
                words += [name] if kind == "flag" else [name, rng.choice(values[kind])]
            else:
                name, (_, kind, _) = rng.choice(chat_opts)
                if kind == "flag":
                    words.append(name)
                elif name.startswith("--") and rng.random() < 0.3:
                    words.append(f"{name}={rng.choice(values[kind])}")
                else:
                    words += [name, rng.choice(values[kind])]
        if rng.random() < 0.1:
            words += ["--", rng.choice(["-x", "hi"])]
        taken += assert_same(monkeypatch, words)
    assert taken > 200  # most of them are ordinary command lines, which the fast lane must take


def framework_help(columns: str | None) -> str:
    env = dict(os.environ)
    env.pop("COLUMNS", None)
    if columns:
        env["COLUMNS"] = columns
    code = ("import typer.main, sys; from sogni_cli.app import app\n"
            "typer.main.get_command(app).main(['--help'], prog_name='sogni', standalone_mode=False)")
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout


def sogni(args: list[str], columns: str | None = None, **kw) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env.pop("COLUMNS", None)
    env.update(kw.pop("env", {}))
    if columns:
        env["COLUMNS"] = columns
    return subprocess.run([sys.executable, "-m", "sogni_cli", *args], env=env, capture_output=True, text=True, **kw)


@pytest.mark.parametrize("args", [["--help"], ["-h"], []], ids=["--help", "-h", "none"])
@pytest.mark.parametrize("columns", [None, "80", "200", "60"])
def test_root_help_is_the_frameworks(columns, args):
    res = sogni(args, columns)
    assert res.returncode == 0
    assert res.stderr == ""
    assert res.stdout == framework_help(columns)
    if columns == "60":
        assert "Usage: sogni [OPTIONS] COMMAND [ARGS]..." in res.stdout


def test_help_and_chat_do_not_load_the_framework(tmp_path):
    """`sogni --help` and a chat (here a dry run) run without importing Typer; `sogni chat --help` still uses it."""
    probe = ("import json, sys\nfrom sogni_cli.__main__ import run\n"
             "code = run(sys.argv[1:])\n"
             "sys.stderr.write(json.dumps([code, 'typer' in sys.modules]))\n")
    env = {"SOGNI_API_KEY": "sk-test-0123456789", "SOGNI_CONFIG_DIR": str(tmp_path / "cfg")}

    def loaded(*args: str) -> list:
        res = subprocess.run([sys.executable, "-c", probe, *args], env={**os.environ, **env}, capture_output=True,
                             text=True, stdin=subprocess.DEVNULL)
        return json.loads(res.stderr.strip().splitlines()[-1])

    assert loaded("--help") == [0, False]
    assert loaded() == [0, False]
    assert loaded("--dry-run", "chat", "hi", "-m", "m1") == [0, False]
    assert loaded("chat", "--help") == [0, True]
    assert loaded("chat", "--max-tokens", "many", "hi") == [2, True]


def test_a_refused_chat_line_gets_the_frameworks_error(cli, env_key):
    res = cli("chat", "--max-tokens", "many", "hi")
    assert res.exit_code == 2
    assert "Invalid value for '--max-tokens': 'many' is not a valid int" in res.stderr
    assert "See `sogni chat --help`." in res.stderr


def test_clean_ups_all_run_last_first_and_the_first_failure_is_raised():
    ctx = fastlane.FastContext(GlobalOptions(), {"model": None}, set())
    ran: list[str] = []

    def fail(name: str):
        def fn():
            ran.append(name)
            raise RuntimeError(name)
        return fn

    ctx.call_on_close(lambda: ran.append("first"))
    ctx.call_on_close(fail("second"))
    ctx.call_on_close(fail("third"))
    with pytest.raises(RuntimeError, match="third"):
        ctx.close()
    assert ran == ["third", "second", "first"]
    assert ctx.get_parameter_source("model").name == "DEFAULT"
    assert ctx.get_parameter_source("nothing") is None


def test_idempotency_keys_are_version_4_uuids():
    import uuid

    from sogni_cli.core.ids import new_uuid, random_hex

    keys = {new_uuid() for _ in range(200)}
    assert len(keys) == 200
    for key in keys:
        parsed = uuid.UUID(key)
        assert str(parsed) == key and parsed.version == 4 and parsed.variant == uuid.RFC_4122
    assert all(len(random_hex(n)) == n and int(random_hex(n), 16) >= 0 for n in (1, 8, 12, 16, 32))


def test_version_loads_neither_typing_nor_the_framework():
    probe = ("import sys\nfrom sogni_cli.__main__ import run\ncode = run(['--version'])\n"
             "sys.stderr.write(repr((code, sorted(m for m in ('typing', 'typer') if m in sys.modules))))\n")
    res = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert res.stdout.startswith("sogni ")
    assert res.stderr.strip().splitlines()[-1] == "(0, [])"


def test_other_commands_do_not_load_the_fast_lane_table():
    probe = ("import sys\nfrom sogni_cli.__main__ import run\ncode = run(['image', '--help'])\n"
             "sys.stderr.write(repr((code, 'sogni_cli.fastlane_table' in sys.modules)))\n")
    res = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert "Usage: sogni image" in res.stdout
    assert res.stderr.strip().splitlines()[-1] == "(0, False)"
