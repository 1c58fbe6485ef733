"""`sogni completion SHELL` and the scripts shipped in completions/ (contract §9)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from sogni_cli import catalog
from sogni_cli import completion_gen as gen
from sogni_cli.app import COMMANDS
from sogni_cli.core.errors import SogniError

from .conftest import BASE_URL

ROOT = Path(__file__).resolve().parents[1]
COMPLETIONS = ROOT / "completions"

_DRIVER = r"""
source "$1"; shift
COMP_WORDS=("$@")
COMP_CWORD=$(( ${#COMP_WORDS[@]} - 1 ))
COMP_LINE="$*"
COMP_POINT=${#COMP_LINE}
_sogni
[ "${#COMPREPLY[@]}" -gt 0 ] && printf '%s\n' "${COMPREPLY[@]}"
exit 0
"""


@pytest.fixture(scope="module")
def bash_script(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("completion") / "sogni.bash"
    path.write_text(gen.generate("bash"), encoding="utf-8")
    return path


def complete(script: Path, *words: str, cwd: Path | None = None, env: dict | None = None) -> list[str]:
    """What bash offers for the command line ``words`` (the last one is being completed)."""
    proc = subprocess.run(["bash", "-c", _DRIVER, "bash", str(script), *words], capture_output=True, text=True,
                          cwd=cwd, env=dict(os.environ) if env is None else env, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    return proc.stdout.splitlines()


# --------------------------------------------------------------------------------------------- shipped files


@pytest.mark.parametrize("shell", gen.SHELLS)
def test_shipped_script_is_what_the_command_prints(cli, shell):
    res = cli("completion", shell)
    assert res.exit_code == 0, res.stderr
    shipped = COMPLETIONS / gen.FILE_NAMES[shell]
    assert shipped.exists(), f"completions/{shipped.name} is missing: run `{gen.REGENERATE}`"
    assert res.stdout == shipped.read_bytes().decode("utf-8"), (
        f"completions/{shipped.name} is out of date with the commands: run `{gen.REGENERATE}`"
    )
    assert "INCOMPLETE" not in res.stdout


def test_regenerate_command_writes_the_shipped_files(tmp_path, capsys):
    assert gen.main(["--write", str(tmp_path / "out")]) == 0
    for name in gen.FILE_NAMES.values():
        assert (tmp_path / "out" / name).read_bytes() == (COMPLETIONS / name).read_bytes(), name
    assert "Wrote" in capsys.readouterr().err


def test_unknown_shell_is_a_usage_error(cli):
    res = cli("completion", "tcsh")
    assert res.exit_code == 2
    assert res.stdout == ""
    assert "Unknown shell 'tcsh'" in res.stderr
    assert cli("completion").exit_code == 2


def test_pwsh_is_an_alias_of_powershell(cli):
    res = cli("completion", "pwsh")
    assert res.exit_code == 0
    assert res.stdout == (COMPLETIONS / "sogni.ps1").read_bytes().decode("utf-8")
    assert "Register-ArgumentCompleter -Native -CommandName 'sogni'" in res.stdout


# --------------------------------------------------------------------------------------------- the tree


def _node(spec: gen.Spec, *path: str) -> gen.Node:
    return next(n for n in spec.nodes if n.path == path)


def _kinds(node: gen.Node) -> dict[str, str]:
    return {name: o.kind for o in node.opts for name in o.names}


def test_spec_covers_every_command_with_option_kinds():
    spec = gen.build_spec(allow_missing=False)
    assert [name for name, _ in _node(spec, ).subs] == sorted(COMMANDS)
    assert spec.skipped == []
    chat = _kinds(_node(spec, "chat"))
    assert chat["-m"] == chat["--model"] == "model"
    assert chat["-o"] == chat["--output-dir"] == "dir"
    assert chat["--messages"] == chat["--function"] == chat["-i"] == chat["--save-messages"] == "file"
    assert chat["--think"] == chat["--no-think"] == chat["--json"] == ""
    assert chat["--max-rounds"] == chat["--system"] == "value"
    assert chat["--tools"] == "choice:default none rich creative-tools creative-agent"
    assert chat["--on-exists"] == "choice:suffix overwrite skip error"
    assert chat["--token-type"] == "choice:spark sogni auto"
    root = _kinds(_node(spec))
    assert root["--profile"] == "value" and root["--emulator"] == "" and root["-q"] == ""
    assert _node(spec, "tools", "show").args[:1] == ["tool"]
    assert _node(spec, "tools", "run").args[:1] == ["tool"]
    assert _node(spec, "completion").args == ["choice:bash zsh fish powershell"]
    assert spec.tools == sorted(catalog.load().names())


def test_missing_command_module_fails_loudly_unless_allowed(cli, monkeypatch):
    import sogni_cli.app as app_mod

    monkeypatch.setitem(app_mod.COMMANDS, "ghost", ("sogni_cli.commands.ghost_not_written", "Not there."))
    with pytest.raises(SogniError, match="sogni_cli.commands.ghost_not_written"):
        gen.build_spec()
    res = cli("completion", "bash")
    assert res.exit_code == 1
    assert res.stdout == ""
    assert "ghost_not_written" in res.stderr

    monkeypatch.setenv(gen.ALLOW_MISSING_ENV, "1")
    spec = gen.build_spec()
    assert spec.skipped == ["ghost"]
    assert "ghost" not in [name for name, _ in _node(spec).subs]
    assert "INCOMPLETE: commands left out (module missing): ghost" in gen.render("bash", spec)


# --------------------------------------------------------------------------------------------- bash


def test_bash_script_is_valid_syntax():
    proc = subprocess.run(["bash", "-n", str(COMPLETIONS / "sogni.bash")], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_bash_completes_commands(bash_script):
    assert complete(bash_script, "sogni", "ch") == ["chat"]
    assert sorted(complete(bash_script, "sogni", "")) == sorted(COMMANDS)
    assert complete(bash_script, "sogni", "tools", "s") == ["show"]
    assert sorted(complete(bash_script, "sogni", "workflow", "")) == sorted(
        name for name, _ in _node(gen.build_spec(), "workflow").subs)


def test_bash_completes_flags_of_the_right_command(bash_script):
    assert complete(bash_script, "sogni", "chat", "--mo") == ["--model"]
    assert sorted(complete(bash_script, "sogni", "--v")) == ["--verbose", "--version"]
    assert "--model" not in complete(bash_script, "sogni", "--")  # root options only before the command
    assert "--seed" in complete(bash_script, "sogni", "image", "--s")


def test_bash_skips_option_values_but_not_flags(bash_script):
    # "--profile ch" takes "ch" as its value, so the next word is still the command.
    assert complete(bash_script, "sogni", "--profile", "ch", "ch") == ["chat"]
    assert complete(bash_script, "sogni", "--emulator", "-q", "ch") == ["chat"]
    # "-s" takes one word (spaces and all) as its value; "--no-stream" is a flag and takes none.
    assert complete(bash_script, "sogni", "chat", "-s", "be brief", "--no-stream", "--mo") == ["--model"]


def test_bash_completes_tool_names(bash_script):
    offered = complete(bash_script, "sogni", "tools", "show", "gen")
    assert "generate_image" in offered
    assert offered == sorted(n for n in catalog.load().names() if n.startswith("gen"))
    assert "generate_video" in complete(bash_script, "sogni", "tools", "run", "--json", "generate_v")


def test_bash_completes_fixed_values(bash_script):
    assert sorted(complete(bash_script, "sogni", "chat", "--on-exists", "s")) == ["skip", "suffix"]
    assert sorted(complete(bash_script, "sogni", "chat", "--tools", "")) == ["creative-agent", "creative-tools", "default",
                                                                               "none", "rich"]
    assert sorted(complete(bash_script, "sogni", "image", "--token-type", "")) == ["auto", "sogni", "spark"]
    assert complete(bash_script, "sogni", "completion", "p") == ["powershell"]
    assert complete(bash_script, "sogni", "config", "set", "mo") == ["model"]


def test_bash_completes_model_names_from_the_cache(bash_script, tmp_path):
    config = Path(os.environ["SOGNI_CONFIG_DIR"])
    assert complete(bash_script, "sogni", "chat", "-m", "") == []  # no cache yet: nothing, no error
    config.mkdir(parents=True)
    (config / "models-cache.txt").write_bytes(b"qwen-a\nqwen-b\r\nllama-3")
    assert complete(bash_script, "sogni", "chat", "-m", "q") == ["qwen-a", "qwen-b"]
    assert complete(bash_script, "sogni", "chat", "--model", "") == ["qwen-a", "qwen-b", "llama-3"]
    # bash splits "--model=q" at "=" by default; without that split the word arrives whole.
    assert complete(bash_script, "sogni", "chat", "--model", "=", "l") == ["llama-3"]
    assert complete(bash_script, "sogni", "chat", "--model", "=") == ["qwen-a", "qwen-b", "llama-3"]
    assert complete(bash_script, "sogni", "chat", "--model=qwen-b") == ["--model=qwen-b"]


def test_bash_reads_the_cache_from_the_default_config_dir(bash_script, tmp_path):
    home = tmp_path / "home"
    (home / ".config" / "sogni").mkdir(parents=True)
    (home / ".config" / "sogni" / "models-cache.txt").write_text("m-one\nm-two\n", encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if k not in ("SOGNI_CONFIG_DIR", "XDG_CONFIG_HOME")}
    env.update(HOME=str(home), OSTYPE="linux-gnu")
    assert complete(bash_script, "sogni", "chat", "-m", "m", env=env) == ["m-one", "m-two"]


def test_models_command_refreshes_what_completion_offers(cli, env_key, httpx_mock, bash_script):
    httpx_mock.add_response(url=f"{BASE_URL}/v1/models", method="GET",
                            json={"object": "list", "data": [{"id": "alpha-7b"}, {"id": "beta-70b"}]})
    assert cli("models").exit_code == 0
    assert complete(bash_script, "sogni", "chat", "--model", "") == ["alpha-7b", "beta-70b"]


def test_bash_completes_files_and_folders(bash_script, tmp_path):
    work = tmp_path / "work"
    (work / "sdir").mkdir(parents=True)
    (work / "sfile.json").write_text("[]", encoding="utf-8")
    (work / "notes.yaml").write_text("[]", encoding="utf-8")
    assert complete(bash_script, "sogni", "chat", "--messages", "n", cwd=work) == ["notes.yaml"]
    assert sorted(complete(bash_script, "sogni", "chat", "-i", "s", cwd=work)) == ["sdir", "sfile.json"]
    assert complete(bash_script, "sogni", "chat", "-o", "s", cwd=work) == ["sdir"]
    assert complete(bash_script, "sogni", "recipe", "validate", "no", cwd=work) == ["notes.yaml"]
    # A plain text argument offers nothing (not file names).
    assert complete(bash_script, "sogni", "chat", "no", cwd=work) == []


# --------------------------------------------------------------------------------------------- other shells


@pytest.mark.parametrize("shell,argv", [
    ("zsh", ["zsh", "-n"]),
    ("fish", ["fish", "--no-execute"]),
])
def test_other_shells_parse_the_script(shell, argv):
    if shutil.which(argv[0]) is None:
        pytest.skip(f"{argv[0]} is not installed")
    proc = subprocess.run([*argv, str(COMPLETIONS / gen.FILE_NAMES[shell])], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_powershell_script_parses():
    pwsh = shutil.which("pwsh")
    if pwsh is None:
        pytest.skip("pwsh is not installed")
    path = str(COMPLETIONS / "sogni.ps1").replace("'", "''")
    cmd = (f"$e = $null; [System.Management.Automation.Language.Parser]::ParseFile('{path}', [ref]$null, [ref]$e)"
           " | Out-Null; if ($e.Count) { $e | ForEach-Object { $_.Message }; exit 1 }")
    proc = subprocess.run([pwsh, "-NoProfile", "-Command", cmd], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_scripts_carry_the_same_commands_and_tools():
    spec = gen.build_spec()
    for shell in gen.SHELLS:
        text = (COMPLETIONS / gen.FILE_NAMES[shell]).read_text(encoding="utf-8")
        assert text.isascii(), shell
        for node in spec.nodes:
            assert node.key in text, (shell, node.key)
        for tool in spec.tools:
            assert tool in text, (shell, tool)
