"""No ordinary input is "a bug": every command, run with its config folder read-only (a Kubernetes or Docker
secret mount holding a world-readable credentials file) and with HOME unset, ends with a proper exit code.

Tests run as root, which ignores permission bits, so the folder is made read-only for real: a read-only
bind mount inside a private mount namespace (``unshare -m``), which vanishes with the process. As another
user a mode of 0555 does the same.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from .conftest import CANARY_KEY, ONE_JOB_RECIPE

ROOT = Path(__file__).resolve().parent.parent

# Every leaf command, with arguments that reach its real work (media and API commands print their request).
COMMANDS: dict[str, list[str]] = {
    "account": ["--dry-run", "account"],
    "doctor": ["doctor", "--json"],
    "workflow approve": ["--dry-run", "workflow", "approve", "wf_1", "--up-to", "10"],
    "recipe emit": ["recipe", "emit", "github", "{work}/r.yaml"],
    "alias list": ["alias", "list"],
    "alias rm": ["alias", "rm", "fast"],
    "alias set": ["alias", "set", "fast", "chat --tools none"],
    "logs files": ["logs", "files"],
    "logs path": ["logs", "path"],
    "logs rm": ["logs", "rm"],
    "logs show": ["logs", "show", "1"],
    "loras": ["--dry-run", "loras"],
    "preset list": ["preset", "list"],
    "preset rm": ["preset", "rm", "terse"],
    "preset save": ["preset", "save", "terse", "--tools", "none"],
    "preset show": ["preset", "show", "terse"],
    "run approve": ["--dry-run", "run", "approve", "run_1"],
    "run cancel": ["--dry-run", "run", "cancel", "run_1"],
    "run list": ["--dry-run", "run", "list"],
    "run show": ["--dry-run", "run", "show", "run_1"],
    "run watch": ["--dry-run", "run", "watch", "run_1"],
    "template create": ["--dry-run", "template", "create"],
    "template delete": ["--dry-run", "template", "delete", "tpl_1"],
    "template fork": ["--dry-run", "template", "fork", "tpl_1"],
    "template list": ["--dry-run", "template", "list"],
    "template run": ["--dry-run", "template", "run", "tpl_1"],
    "template show": ["--dry-run", "template", "show", "tpl_1"],
    "template update": ["--dry-run", "template", "update", "tpl_1"],
    "workflow reseed": ["--dry-run", "workflow", "reseed", "wf_1"],
    "workflow resume": ["--dry-run", "workflow", "resume", "wf_1"],
    "auth login": ["auth", "login"],
    "auth logout": ["auth", "logout"],
    "auth status": ["auth", "status"],
    "chat": ["--dry-run", "chat", "hi"],
    "completion": ["completion", "bash"],
    "config get": ["config", "get", "model"],
    "config list": ["config", "list"],
    "config path": ["config", "path"],
    "config set": ["config", "set", "model", "other"],
    "config unset": ["config", "unset", "model"],
    "edit": ["--dry-run", "edit", "brighter", "-i", "{work}/in.png"],
    "emulator": ["emulator", "--help"],  # serves until stopped; it reads no settings
    "image": ["--dry-run", "image", "a heron"],
    "models": ["--dry-run", "models"],
    "music": ["--dry-run", "music", "a calm piano"],
    "recipe plan": ["recipe", "plan", "{work}/r.yaml"],
    "recipe report": ["recipe", "report", "{work}"],
    "recipe run": ["--dry-run", "recipe", "run", "{work}/r.yaml", "-o", "{work}/out"],
    "recipe schema": ["recipe", "schema"],
    "recipe validate": ["recipe", "validate", "{work}/r.yaml"],
    "speech": ["--dry-run", "speech", "hello there"],
    "tools list": ["tools", "list"],
    "tools run": ["--dry-run", "tools", "run", "generate_image", "--arg", "prompt=a heron"],
    "tools show": ["tools", "show", "generate_image"],
    "video": ["--dry-run", "video", "waves at night"],
    "workflow cancel": ["--dry-run", "workflow", "cancel", "wf_1"],
    "workflow download": ["--dry-run", "workflow", "download", "wf_1", "-o", "{work}/out"],
    "workflow events": ["--dry-run", "workflow", "events", "wf_1"],
    "workflow list": ["--dry-run", "workflow", "list"],
    "workflow show": ["--dry-run", "workflow", "show", "wf_1"],
    "workflow watch": ["--dry-run", "workflow", "watch", "wf_1"],
}
#: Commands that must write into the config folder: a clean usage error there.
WRITERS = {"auth login", "auth logout", "config set", "config unset"}

DRIVER = textwrap.dedent("""
    import io, json, sys
    from sogni_cli.__main__ import run
    from sogni_cli.core import config, secrets

    class In(io.TextIOWrapper):
        def isatty(self):
            return False

    results = {}
    for name, args in json.loads(sys.argv[1]).items():
        secrets.clear()
        config.reset_warnings()
        out, err = io.StringIO(), io.StringIO()
        sys.stdin = In(io.BytesIO(b"sk-another-key-0123456789"), encoding="utf-8")
        sys.stdout, sys.stderr = out, err
        try:
            code = run(args)
        finally:
            sys.stdout, sys.stderr = sys.__stdout__, sys.__stderr__
        results[name] = [code, err.getvalue()]
    print(json.dumps(results))
""")


def _leaf_commands() -> set[str]:
    from sogni_cli.completion_gen import build_spec

    return {" ".join(n.path) for n in build_spec().nodes if n.path and not n.subs}


def test_the_table_names_every_command():
    assert set(COMMANDS) == _leaf_commands()


def _readonly_runner(folder: Path) -> list[str] | None:
    """A command prefix that runs its command with ``folder`` read-only, or None where that cannot be done."""
    if os.geteuid() != 0:
        folder.chmod(0o555)
        return []
    if not shutil.which("unshare") or sys.platform != "linux":
        return None
    probe = subprocess.run(["unshare", "-m", "sh", "-c", f"mount --bind {folder} {folder} && "
                            f"mount -o remount,bind,ro {folder} && ! touch {folder}/.probe"],
                           capture_output=True)
    if probe.returncode != 0:
        return None
    return ["unshare", "-m", "sh", "-c",
            f'mount --bind {folder} {folder} && mount -o remount,bind,ro {folder} && exec "$@"', "sh"]


def test_every_command_with_a_read_only_config_folder_and_no_home(tmp_path):
    from PIL import Image

    config = tmp_path / "secret-mount"
    config.mkdir()
    (config / "credentials").write_text(f"[default]\napi_key = {CANARY_KEY}\n")
    (config / "credentials").chmod(0o644)  # world-readable, as a mounted secret is
    (config / "config.yaml").write_text("profiles:\n  default:\n    model: m1\n")
    work = tmp_path / "work"
    work.mkdir()
    (work / "r.yaml").write_text(ONE_JOB_RECIPE)
    Image.new("RGB", (8, 8)).save(work / "in.png")

    prefix = _readonly_runner(config)
    if prefix is None:
        pytest.skip("cannot make a folder read-only here (root without mount namespaces)")
    env = {k: v for k, v in os.environ.items() if not k.startswith("SOGNI_") and k not in ("HOME", "XDG_CONFIG_HOME")}
    env["SOGNI_CONFIG_DIR"] = str(config)
    env["SOGNI_BASE_URL"] = "http://127.0.0.1:9"  # loopback, nothing listening: no request leaves the machine
    env["PYTHONPATH"] = str(ROOT)
    commands = {name: [a.replace("{work}", str(work)) for a in args] for name, args in COMMANDS.items()}
    proc = subprocess.run([*prefix, sys.executable, "-c", DRIVER, json.dumps(commands)], env=env, cwd=work,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    results = json.loads(proc.stdout.strip().splitlines()[-1])
    bugs = {name: r for name, r in results.items()
            if r[0] == 1 or "bug" in r[1] or "Internal error" in r[1]}
    assert not bugs, bugs
    for name in WRITERS:
        code, err = results[name]
        assert code == 2, (name, err)
        error = [line for line in err.splitlines() if line.startswith("Error: ")]
        assert len(error) == 1 and str(config) in error[0] and "Traceback" not in err, (name, err)
    code, err = results["auth status"]
    assert code == 0 and "Warning:" in err and "credentials" in err and "using it anyway" in err
    assert results["chat"][0] == 0 and results["config get"][0] == 0
    assert CANARY_KEY not in proc.stdout + proc.stderr
