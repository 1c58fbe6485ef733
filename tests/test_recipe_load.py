"""The safe recipe loader: positions, duplicate keys, tags, aliases, size limit, YAML 1.1 traps."""

from __future__ import annotations

import textwrap

import pytest

from sogni_cli.core.loader import LoadError, Mark, load_file, load_text


def pos(text: str, needle: str, nth: int = 0) -> Mark:
    """1-based line and column of the nth occurrence of ``needle`` in ``text``."""
    i = -1
    for _ in range(nth + 1):
        i = text.index(needle, i + 1)
    line = text.count("\n", 0, i) + 1
    col = i - (text.rfind("\n", 0, i) + 1) + 1
    return Mark(line, col)


def test_values_and_positions():
    text = textwrap.dedent("""\
        version: 1
        jobs:
          - id: a
            image: {prompt: "hello", width: 512}
        """)
    doc, problems = load_text(text, "r.yaml")
    assert not problems.items
    assert doc.data == {"version": 1, "jobs": [{"id": "a", "image": {"prompt": "hello", "width": 512}}]}
    assert doc.mark(("jobs", 0, "image", "width")) == pos(text, "512")
    assert doc.key_mark(("jobs", 0, "image", "width")) == pos(text, "width")
    assert doc.mark(("jobs", 0, "id")) == pos(text, "a\n")
    # quoted one-line scalars: offsets count from inside the quotes
    assert doc.text_offset_mark(("jobs", 0, "image", "prompt"), 2) == Mark(pos(text, '"hello"').line,
                                                                            pos(text, '"hello"').col + 3)


def test_duplicate_keys_are_reported_with_the_second_position():
    text = "version: 1\nname: a\nname: b\njobs: []\n"
    doc, problems = load_text(text, "r.yaml")
    assert [(p.mark, p.message) for p in problems.errors] == [(Mark(3, 1), "duplicate key 'name' (first at line 2)")]


@pytest.mark.parametrize("tag", ["!!python/object:os.system", "!!python/name:os.system", "!custom", "!!binary",
                                 "!!set"])
def test_non_standard_tags_are_refused(tag):
    text = f"version: 1\njobs:\n  - id: a\n    image: {tag} {{prompt: x}}\n"
    _, problems = load_text(text, "r.yaml")
    assert problems.errors, tag
    err = problems.errors[0]
    assert err.mark == pos(text, tag)
    assert "is not allowed" in err.message


def test_python_tag_is_never_constructed(tmp_path):
    marker = tmp_path / "pwned"
    text = f"version: 1\nx: !!python/object/apply:os.system ['touch {marker}']\n"
    load_text(text, "r.yaml")
    assert not marker.exists()


def test_billion_laughs_is_refused():
    lines = ['a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i in range(1, 9):
        prev = f"*a{i - 1}"
        lines.append(f"a{i}: &a{i} [{', '.join([prev] * 9)}]")
    text = "\n".join(lines) + "\n"
    with pytest.raises(LoadError) as info:
        load_text(text, "r.yaml")
    assert "expands to more than" in info.value.problem.message


def test_small_aliases_and_merge_keys_work():
    text = textwrap.dedent("""\
        base: &base {model: z-turbo, width: 512}
        job:
          <<: *base
          width: 768
        """)
    doc, problems = load_text(text, "r.yaml")
    assert not problems.items
    assert doc.data["job"] == {"model": "z-turbo", "width": 768}


def test_recursive_alias_is_refused():
    _, problems = load_text("a: &x [1, *x]\n", "r.yaml")
    assert any("recursive alias" in p.message for p in problems.errors)


def test_file_size_limit(tmp_path):
    f = tmp_path / "big.yaml"
    f.write_text("version: 1\n# " + "x" * 2000 + "\n")
    with pytest.raises(LoadError) as info:
        load_file(f, max_bytes=1000)
    assert "limited to 1000 bytes" in info.value.problem.message
    f2 = tmp_path / "huge.yaml"
    f2.write_bytes(b"version: 1\n" + b"#" * (1024 * 1024 + 10))
    with pytest.raises(LoadError):
        load_file(f2)


def test_not_utf8_and_syntax_errors_have_positions(tmp_path):
    f = tmp_path / "bin.yaml"
    f.write_bytes(b"version: 1\nname: \xff\xfe\n")
    with pytest.raises(LoadError) as info:
        load_file(f)
    assert info.value.problem.mark == Mark(2, 7)
    with pytest.raises(LoadError) as info:
        load_text("version: 1\njobs: [\n", "r.yaml")
    assert info.value.problem.message.startswith("invalid YAML")
    with pytest.raises(LoadError):
        load_text("", "r.yaml")
    with pytest.raises(LoadError):
        load_text("a: 1\n---\nb: 2\n", "r.yaml")


def test_yaml_11_traps_remember_their_text():
    text = "a: no\nb: 0042\nc: 1:30\nd: 42\ne: true\n"
    doc, _ = load_text(text, "r.yaml")
    assert doc.data == {"a": False, "b": 34, "c": 90, "d": 42, "e": True}
    assert doc.scalars[("a",)].text == "no" and doc.scalars[("a",)].trap
    assert doc.scalars[("b",)].text == "0042" and doc.scalars[("b",)].trap
    assert doc.scalars[("c",)].text == "1:30" and doc.scalars[("c",)].trap
    assert not doc.scalars[("d",)].trap
    assert not doc.scalars[("e",)].trap
