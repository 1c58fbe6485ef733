"""sogni on macOS and Windows runners: locks without ``fcntl``, file names every file system takes, names in
every script, case-insensitive clashes, and a console that is not UTF-8."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fake_msvcrt import ENV

ROOT = Path(__file__).resolve().parent.parent


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SOGNI_") and k != ENV}
    env["SOGNI_CONFIG_DIR"] = str(tmp_path / "cfg")
    env["PYTHONPATH"] = str(ROOT)
    env.update(extra)
    return env


# ----------------------------------------------------------------------------- locks


def test_the_locking_tests_pass_with_windows_locks_in_place_of_fcntl(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:randomly",
                           "tests/test_locking.py"], cwd=ROOT, env=_env(tmp_path, **{ENV: "1"}),
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert " passed" in proc.stdout and "skipped" not in proc.stdout


def test_the_package_imports_and_runs_without_fcntl(tmp_path):
    code = ("import sys; sys.modules['fcntl'] = None\n"
            "import sogni_cli.core.filewrite, sogni_cli.media.downloads, sogni_cli.recipes.run\n"
            "from sogni_cli.__main__ import main\n"
            "main(sys.argv[1:])\n")
    for args in (["--help"], ["recipe", "--help"], ["config", "path"]):
        proc = subprocess.run([sys.executable, "-c", code, *args], cwd=tmp_path, env=_env(tmp_path),
                              capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout and not proc.stderr


# ----------------------------------------------------------------------------- file names


@pytest.mark.parametrize("template, expected", [
    ("CON", "CON_.png"),
    ("nul.backup", "nul_.backup.png"),
    ("com1", "com1_.png"),
    ('a<b>c:d"e|f?g*h', "a-b-c-d-e-f-g-h.png"),
    ("trailing dots...", "trailing dots.png"),
    ("trailing space   ", "trailing space.png"),
    ("\u202egnp.exe", "gnp.exe.png"),
    ("-rf", "rf.png"),
])
def test_saved_names_are_valid_on_windows(cli, emu, tmp_path, template, expected):
    out = tmp_path / "out"
    res = cli("image", "a heron", "--name", template, "-o", str(out))
    assert res.exit_code == 0, res.stderr
    assert [p.name for p in out.iterdir() if not p.name.startswith(".")] == [expected]


@pytest.mark.parametrize("prompt, slug", [
    ("日本の猫が月にいる", "日本の猫が月にいる"),
    ("قطة على القمر", "قطة-على-القمر"),
    ("Кошка на Луне", "кошка-на-луне"),
    ("Ｆｕｌｌ　Ｗｉｄｔｈ", "full-width"),
    ("!!! ??? …", "generate-image"),  # no letters at all: the tool name
])
def test_slugs_keep_the_letters_of_every_script(cli, emu, tmp_path, prompt, slug):
    out = tmp_path / "out"
    res = cli("image", prompt, "-o", str(out))
    assert res.exit_code == 0, res.stderr
    assert [p.name for p in out.iterdir() if not p.name.startswith(".")] == [f"{slug}-1.png"]


def test_a_long_prompt_in_any_script_gives_a_name_of_bounded_bytes(cli, emu, tmp_path):
    out = tmp_path / "out"
    res = cli("image", "猫" * 300, "--name", "{slug}-{slug}-{slug}-{slug}-{slug}-{slug}-{slug}", "-o", str(out))
    assert res.exit_code == 0, res.stderr
    (name,) = [p.name for p in out.iterdir() if not p.name.startswith(".")]
    assert len(name.encode("utf-8")) <= 200 and name.endswith(".png") and name.startswith("猫")


def test_names_that_differ_only_by_case_clash_before_anything_is_sent(cli, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "r.yaml").write_text(
        "version: 1\nname: case\njobs:\n"
        "  - id: a\n    image: {prompt: a heron}\n    filename: Heron\n"
        "  - id: b\n    image: {prompt: a heron}\n    filename: heron\n")
    res = cli("recipe", "validate", "r.yaml")
    assert res.exit_code == 2
    assert "would write the same files" in res.stderr


# ----------------------------------------------------------------------------- a console that is not UTF-8


def test_output_survives_a_legacy_code_page(tmp_path):
    env = _env(tmp_path, PYTHONIOENCODING="cp1252")
    proc = subprocess.run([sys.executable, "-m", "sogni_cli", "--dry-run", "--api-key", "sk-test-0123456789",
                           "chat", "日本の猫"], cwd=tmp_path, env=env, capture_output=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert b'"content": "\\u65e5\\u672c\\u306e\\u732b"' in proc.stdout
    proc = subprocess.run([sys.executable, "-m", "sogni_cli", "--profile", "日本", "config", "list"], cwd=tmp_path,
                          env=env, capture_output=True, timeout=60)
    assert proc.returncode == 2
    assert proc.stderr.startswith(b"Error: Unknown profile '\\u65e5\\u672c'")
