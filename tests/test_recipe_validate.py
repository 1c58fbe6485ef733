"""`sogni recipe validate`: every problem with its exact FILE:LINE:COL, exit 2, nothing sent."""

from __future__ import annotations

import textwrap

import pytest

from tests.test_recipe_load import pos


def write(tmp_path, text: str, name: str = "r.yaml") -> str:
    text = textwrap.dedent(text)
    (tmp_path / name).write_text(text, encoding="utf-8")
    return text


def problem_lines(res) -> list[str]:
    return [ln for ln in res.stderr.splitlines() if ln.startswith("r.yaml:")]


def at(text: str, needle: str, message: str, nth: int = 0, warning: bool = False) -> str:
    m = pos(text, needle, nth)
    return f"r.yaml:{m.line}:{m.col}: {'warning: ' if warning else ''}{message}"


def test_valid_recipe(cli, tmp_cwd):
    write(tmp_cwd, """\
        version: 1
        jobs:
          - id: a
            image: {prompt: "a red fox", width: 512, height: 512}
        """)
    res = cli("recipe", "validate", "r.yaml")
    assert res.exit_code == 0, res.stderr
    assert res.stdout == ""
    assert "valid (1 job: image 1 job (1 media))" in res.stderr


def test_every_problem_at_once_with_positions(cli, tmp_cwd):
    text = write(tmp_cwd, """\
        version: 1
        naem: x
        vars:
          style: studio
        jobs:
          - id: a
            image:
              prompt: "{{ vars.styel }} fox"
              widht: 512
              height: tall
              count: 40
              args: {colour: red}
          - id: b
            needs: [a, nope]
            chat: {prompt: "hi", temperature: 9}
          - id: c
            needs: d
            music: {prompt: x}
          - id: d
            needs: [c]
            speech: {text: "{{ jobs.c.txt }}"}
        """)
    res = cli("recipe", "validate", "r.yaml")
    assert res.exit_code == 2
    assert res.stdout == ""
    expected = [
        at(text, "naem", "unknown key 'naem' in the recipe (did you mean 'name'?)"),
        at(text, "{{ vars.styel", "unknown variable 'vars.styel' (did you mean 'vars.style'?)".replace(
            "(did you mean 'vars.style'?)", "(did you mean 'style'?)")),
        at(text, "widht", "unknown field 'widht' for an image job (did you mean 'width'?)"),
        at(text, "tall", "'height' must be a number, got string 'tall'"),
        at(text, "nope", "needs 'nope', which is not a job of this recipe"),
        at(text, "{{ jobs.c.txt", "unknown output 'txt' of job 'c': one of text, texts, files, file, workflow "
                                  "(did you mean 'text'?)"),
        at(text, "c]", "circular needs: c → d → c"),
    ]
    got = problem_lines(res)
    for line in expected:
        assert line in got, (line, got)
    # count and args are checked against the catalogue, temperature by the chat request rules
    assert at(text, "40", "'count' must be between 1 and 16, got 40") in got
    assert any(ln.startswith(at(text, "colour", "unknown parameter 'colour'")) for ln in got), got
    assert at(text, "9}", "Invalid --temperature 9: must be between 0 and 2.") in got
    assert "nothing was sent" in res.stderr


def test_unknown_key_in_job_and_duplicate_id(cli, tmp_cwd):
    text = write(tmp_cwd, """\
        version: 1
        jobs:
          - id: a
            image: {prompt: x}
            outptu: shots
          - id: a
            chat: hi
        """)
    got = problem_lines(cli("recipe", "validate", "r.yaml"))
    assert at(text, "outptu", "unknown key 'outptu' in a job (did you mean 'output'?)") in got
    assert at(text, "a\n", "duplicate job id 'a' (first at line 3)", nth=1) in got


def test_tags_duplicates_and_traps(cli, tmp_cwd):
    text = write(tmp_cwd, """\
        version: 1
        jobs:
          - id: a
            speech: {text: hello, voice: no}
          - id: b
            image: !!python/object:os.system {prompt: x}
            image: {prompt: y}
        """)
    res = cli("recipe", "validate", "r.yaml")
    got = problem_lines(res)
    assert res.exit_code == 2
    assert at(text, "!!python", "the tag !!python/object:os.system is not allowed: recipes use plain YAML values "
                                "only (no custom or language-specific tags)") in got
    assert at(text, "image: {prompt: y", "duplicate key 'image' (first at line 6)") in got
    assert at(text, "no}", "'voice': `no` is read by YAML as boolean false, not the text 'no'; using the text — "
                           "quote it to make that explicit", warning=True) in got


def test_trap_alone_is_a_warning_and_the_text_is_used(cli, tmp_cwd):
    text = write(tmp_cwd, """\
        version: 1
        jobs:
          - id: a
            image: {prompt: 0042}
        """)
    res = cli("recipe", "validate", "r.yaml")
    assert res.exit_code == 0, res.stderr
    assert at(text, "0042", "'prompt': `0042` is read by YAML as number 34, not the text '0042'; using the text — "
                            "quote it to make that explicit", warning=True) in problem_lines(res)
    plan = cli("recipe", "plan", "r.yaml", "--json")
    import json

    assert json.loads(plan.stdout)["jobs"][0]["request"]["body"]["input"]["steps"][0]["arguments"]["prompt"] == "0042"


def test_output_leaving_the_folder_and_two_jobs_one_file(cli, tmp_cwd):
    text = write(tmp_cwd, """\
        version: 1
        matrix:
          product: [mug, lamp]
        jobs:
          - id: a
            image: {prompt: x}
            output: ../../etc
          - id: b
            matrix: true
            image: {prompt: "{{ matrix.product }}"}
            filename: shot
          - id: c
            chat: {prompt: x}
            save: /tmp/x.txt
        """)
    res = cli("recipe", "validate", "r.yaml")
    got = problem_lines(res)
    assert res.exit_code == 2
    assert at(text, "../../etc", "output '../../etc' leaves the output folder (use a relative path inside it)") in got
    assert at(text, "/tmp/x.txt", "save '/tmp/x.txt' leaves the output folder (use a relative file path inside "
                                  "it)") in got
    assert at(text, "shot\n", "b[mug] and b[lamp] would write the same files (shot); give them different "
                              "`filename`, `output` or `save` values (e.g. with {{ matrix.AXIS }})") in got
    assert not list(tmp_cwd.glob("**/*.png"))


def test_empty_matrix_and_everything_excluded(cli, tmp_cwd):
    text = write(tmp_cwd, """\
        version: 1
        jobs:
          - id: a
            matrix: {product: []}
            image: {prompt: x}
          - id: b
            matrix:
              p: [x]
              exclude: [{p: x}]
            image: {prompt: "{{ matrix.p }}"}
        """)
    got = problem_lines(cli("recipe", "validate", "r.yaml"))
    assert at(text, "[]", "matrix axis 'product' is empty: the matrix would have no cells") in got
    assert at(text, "p: [x]", "the matrix has no cells: every combination is excluded") in got


def test_glob_matching_nothing_is_a_warning_or_an_error_with_strict(cli, tmp_cwd):
    text = write(tmp_cwd, """\
        version: 1
        jobs:
          - id: a
            matrix: {photo: {glob: "photos/*.jpg"}}
            edit: {prompt: x, images: ["{{ matrix.photo }}"]}
        """)
    res = cli("recipe", "validate", "r.yaml")
    assert res.exit_code == 0, res.stderr
    assert any(ln.startswith(at(text, '"photos', "warning: glob 'photos/*.jpg' matches no files"))
               for ln in problem_lines(res)), res.stderr
    assert "valid (0 jobs)" in res.stderr
    res = cli("recipe", "validate", "r.yaml", "--strict")
    assert res.exit_code == 2
    assert any(ln.startswith(at(text, '"photos', "glob 'photos/*.jpg' matches no files"))
               for ln in problem_lines(res))


def test_missing_input_file_and_unknown_tool(cli, tmp_cwd):
    text = write(tmp_cwd, """\
        version: 1
        jobs:
          - id: a
            edit: {prompt: x, images: [missing.png]}
          - id: b
            tool: {name: enhance_promt, prompt: x}
        """)
    got = problem_lines(cli("recipe", "validate", "r.yaml"))
    assert any(ln.startswith(at(text, "[missing.png]", "File not found:")) for ln in got), got
    assert any(ln.startswith(at(text, "enhance_promt", "Unknown tool 'enhance_promt'"))
               and "enhance_prompt" in ln for ln in got), got


def test_matrix_value_used_without_a_matrix(cli, tmp_cwd):
    text = write(tmp_cwd, """\
        version: 1
        jobs:
          - id: a
            image: {prompt: "{{ matrix.product }}"}
        """)
    got = problem_lines(cli("recipe", "validate", "r.yaml"))
    assert at(text, "{{ matrix", "'matrix.product' is used, but job 'a' has no matrix (add `matrix: true` to the "
                                 "job)") in got


@pytest.mark.parametrize("content, message", [
    ("version: 2\njobs: [{id: a, chat: hi}]\n", "r.yaml:1:10: unsupported recipe version 2: this sogni reads version 1"),
    ("jobs: [{id: a, chat: hi}]\n", "r.yaml:1:1: missing `version: 1`"),
    ("version: 1\njobs:\n  - id: a\n", "r.yaml:3:5: the job 'a' has no kind: give one of chat, image, edit, video, "
                                       "music, speech, tool, template"),
    ("version: 1\njobs:\n  - {id: a, chat: hi, image: x}\n", "r.yaml:3:23: a job has exactly one kind; this one has "
                                                             "chat and image"),
    ("version: 1\njobs:\n  - {id: a, chat: {prompt: '{{ vars.x '}}\n", "r.yaml:3:29: '{{' without a closing '}}'"),
])
def test_structure_errors(cli, tmp_cwd, content, message):
    (tmp_cwd / "r.yaml").write_text(content)
    res = cli("recipe", "validate", "r.yaml")
    assert res.exit_code == 2
    assert message in res.stderr.splitlines(), res.stderr


def test_set_and_env_variables(cli, tmp_cwd, monkeypatch):
    write(tmp_cwd, """\
        version: 1
        vars:
          n: {default: 2, min: 1, max: 4}
          style: {default: studio, env: RECIPE_STYLE}
        jobs:
          - id: a
            image: {prompt: "{{ vars.style }}", count: "{{ vars.n }}"}
        """)
    import json

    doc = json.loads(cli("recipe", "plan", "r.yaml", "--json").stdout)
    assert doc["jobs"][0]["request"]["body"]["input"]["steps"][0]["arguments"] == {"prompt": "studio",
                                                                                   "numberOfVariations": 2}
    assert doc["media"] == 2
    monkeypatch.setenv("RECIPE_STYLE", "outdoor")
    doc = json.loads(cli("recipe", "plan", "r.yaml", "--json", "--set", "n=3").stdout)
    assert doc["jobs"][0]["request"]["body"]["input"]["steps"][0]["arguments"] == {"prompt": "outdoor",
                                                                                   "numberOfVariations": 3}
    res = cli("recipe", "plan", "r.yaml", "--set", "n=9")
    assert res.exit_code == 2 and "--set n: 9 is above the maximum 4" in res.stderr
    res = cli("recipe", "plan", "r.yaml", "--set", "styel=x")
    assert res.exit_code == 2 and "the recipe has no variable 'styel' (did you mean 'style'?)" in res.stderr
    res = cli("recipe", "plan", "r.yaml", "--set", "n=two")
    assert res.exit_code == 2 and "'two' is not a whole number" in res.stderr


def test_variable_env_is_only_read_when_the_recipe_says_so(cli, tmp_cwd, monkeypatch):
    write(tmp_cwd, """\
        version: 1
        vars: {style: studio}
        jobs:
          - id: a
            image: {prompt: "{{ vars.style }}"}
        """)
    monkeypatch.setenv("STYLE", "outdoor")
    monkeypatch.setenv("RECIPE_STYLE", "outdoor")
    res = cli("recipe", "plan", "r.yaml")
    assert '"prompt": "studio"' in res.stdout


@pytest.mark.parametrize("shard", ["3/2", "0/2", "1/0", "x"])
def test_bad_shard(cli, tmp_cwd, shard):
    write(tmp_cwd, "version: 1\njobs: [{id: a, chat: hi}]\n")
    res = cli("recipe", "plan", "r.yaml", "--shard", shard)
    assert res.exit_code == 2
    assert "--shard" in res.stderr


def test_missing_file(cli, tmp_cwd):
    res = cli("recipe", "validate", "nope.yaml")
    assert res.exit_code == 2
    assert "nope.yaml:1:1: no such file" in res.stderr


def test_unsafe_files_are_refused_before_parsing(cli, tmp_cwd):
    big = tmp_cwd / "big.yaml"
    big.write_bytes(b"version: 1\n" + b"#" * (1024 * 1024))
    res = cli("recipe", "validate", "big.yaml")
    assert res.exit_code == 2
    assert "big.yaml:1:1: the file is" in res.stderr and "recipes are limited to 1048576 bytes" in res.stderr
    lines = ['a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 9)]
    (tmp_cwd / "lol.yaml").write_text("version: 1\n" + "\n".join(lines) + "\njobs: []\n")
    res = cli("recipe", "validate", "lol.yaml")
    assert res.exit_code == 2
    assert "the document expands to more than 200000 values" in res.stderr
