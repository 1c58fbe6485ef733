"""File naming rules for saved artifacts (contract §7)."""

from __future__ import annotations

import os

import pytest

from sogni_cli.core.errors import ExitCode, UsageError
from sogni_cli.media import naming
from sogni_cli.media.naming import (EXT_ALLOWLIST, TakenNames, ext_for, render_name, resolve_collision, safe_join,
                                    slugify)


# -- slugify ---------------------------------------------------------------------------------------

def test_slugify_words_and_accents():
    assert slugify("A Cat, on the Moon!") == "a-cat-on-the-moon"
    assert slugify("Crème brûlée à la café") == "crème-brûlée-à-la-café"
    assert slugify("../../etc/passwd") == "etc-passwd"
    assert slugify("") == ""
    assert slugify(None) == ""
    assert slugify("日本語") == "日本語"
    assert slugify("!!! ???") == ""


def test_slugify_cuts_on_a_word_boundary():
    text = "a watercolor painting of a lighthouse on a rocky shore at dawn"
    slug = slugify(text, max_len=40)
    assert len(slug) <= 40
    assert slug == "a-watercolor-painting-of-a-lighthouse-on"
    assert not slug.endswith("-")
    long_word = "x" * 100
    assert slugify(long_word, max_len=10) == "x" * 10


# -- extensions ------------------------------------------------------------------------------------

def test_allowlist_is_the_documented_set():
    assert EXT_ALLOWLIST == {"png", "jpg", "jpeg", "webp", "gif", "mp4", "mov", "webm", "mp3", "wav", "flac",
                             "m4a", "ogg", "glb", "json", "txt"}


@pytest.mark.parametrize("url,ctype,expected", [
    ("https://cdn.sogni.ai/runs/r/img-2.png", None, "png"),
    ("https://cdn.sogni.ai/runs/r/img-2.PNG?X-Amz-Signature=abc.exe", None, "png"),
    ("https://cdn.sogni.ai/r/photo.jpeg", None, "jpg"),
    ("https://cdn.sogni.ai/r/img.png", "image/jpeg", "jpg"),  # content type first
    ("https://cdn.sogni.ai/r/img.png", "image/webp; charset=binary", "webp"),
    ("https://cdn.sogni.ai/r/blob", "video/quicktime", "mov"),
    ("https://cdn.sogni.ai/r/blob", "model/gltf-binary", "glb"),
    ("https://cdn.sogni.ai/r/blob", "audio/mpeg", "mp3"),
    ("https://cdn.sogni.ai/r/clip.mp4", "application/octet-stream", "mp4"),
    ("https://cdn.sogni.ai/r/blob", "application/octet-stream", None),
    ("https://cdn.sogni.ai/r/run.sh", "application/x-sh", None),
    ("https://cdn.sogni.ai/r/setup.exe", None, None),
    ("https://cdn.sogni.ai/r/page", "text/html", None),
    ("https://cdn.sogni.ai/r/..%2F..%2F.bashrc", None, None),
    ("https://cdn.sogni.ai/r/x.png%2F..%2Fevil", None, None),
    ("https://cdn.sogni.ai/r/x.p%00ng", None, None),
    ("", "image/gif", "gif"),
    ("", None, None),
])
def test_ext_for(url, ctype, expected):
    assert ext_for(url, ctype) == expected


# -- render_name -----------------------------------------------------------------------------------

FIELDS = {"index": 2, "count": 4, "tool": "sogni_generate_image", "slug": "a-red-fox", "seed": 42,
          "workflow": "wf_0123456789", "date": "2025-01-31", "ext": "png"}


def test_default_template_is_slug_index_plus_ext():
    assert render_name(None, FIELDS) == "a-red-fox-2.png"
    assert render_name("", FIELDS) == "a-red-fox-2.png"


def test_every_placeholder_renders():
    name = render_name("{date}_{tool}_{workflow}_{seed}_{index}of{count}_{slug}", FIELDS)
    assert name == "2025-01-31_sogni_generate_image_wf_0123456789_42_2of4_a-red-fox.png"


def test_ext_placeholder_is_not_appended_twice():
    assert render_name("{slug}.{ext}", FIELDS) == "a-red-fox.png"
    assert render_name("{ext}-{slug}", FIELDS) == "png-a-red-fox"


def test_format_spec_on_numbers():
    assert render_name("{slug}-{index:03}", FIELDS) == "a-red-fox-002.png"


def test_unknown_placeholder_lists_the_allowed_ones():
    with pytest.raises(UsageError) as info:
        render_name("{slug}-{prompt}", FIELDS)
    assert info.value.exit_code == ExitCode.USAGE
    assert "{prompt}" in info.value.message
    for f in ("{index}", "{count}", "{tool}", "{slug}", "{seed}", "{workflow}", "{date}", "{ext}"):
        assert f in info.value.hint


@pytest.mark.parametrize("template", ["{slug.__class__}", "{slug[0]}", "{slug!r}", "{}", "{slug", "{index:{count}}",
                                      "{slug:03d}"])
def test_malformed_templates_are_usage_errors(template):
    with pytest.raises(UsageError):
        render_name(template, FIELDS)


@pytest.mark.parametrize("hostile", ["../../.bashrc", "/etc/passwd", "..\\..\\win.ini", "a\x00b", "a\nb\x1b[31m",
                                     "....", ".hidden", "C:\\x", "a/../../b"])
def test_rendered_names_are_sanitised(hostile, tmp_path):
    name = render_name("{tool}", {**FIELDS, "tool": hostile})
    assert "/" not in name and "\\" not in name and "\x00" not in name
    assert ".." not in name
    assert not name.startswith(".")
    assert all(ord(c) >= 32 and c != "\x7f" for c in name)
    assert name.endswith(".png")
    # and it lands inside the output folder
    assert safe_join(tmp_path, name).parent == tmp_path


def test_names_are_capped_at_200_chars_keeping_the_extension():
    name = render_name("{tool}", {**FIELDS, "tool": "y" * 500})
    assert len(name) == 200
    assert name.endswith(".png")
    name = render_name("{tool}.{ext}", {**FIELDS, "tool": "z" * 500})
    assert len(name) == 200 and name.endswith(".png")


def test_empty_result_falls_back_to_a_name():
    assert render_name("{seed}", {**FIELDS, "seed": None, "tool": ""}) == "artifact.png"
    assert render_name("...", FIELDS) == "sogni_generate_image.png"


def test_disallowed_extension_is_dropped():
    assert render_name("{slug}", {**FIELDS, "ext": "exe"}) == "a-red-fox"
    assert render_name("{slug}", {**FIELDS, "ext": "jpeg"}) == "a-red-fox.jpg"


# -- safe_join -------------------------------------------------------------------------------------

def test_safe_join_accepts_plain_names(tmp_path):
    assert safe_join(tmp_path, "a.png") == tmp_path / "a.png"


@pytest.mark.parametrize("name", ["../a.png", "/etc/passwd", "..", ".", "", "sub/../../x", "a\x00b"])
def test_safe_join_refuses_escapes(tmp_path, name):
    with pytest.raises(UsageError):
        safe_join(tmp_path / "out", name)


def test_safe_join_refuses_a_symlink_out_of_the_folder(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "evil.png").symlink_to(tmp_path / "outside.png")
    with pytest.raises(UsageError):
        safe_join(out, "evil.png")


# -- resolve_collision -----------------------------------------------------------------------------

def test_collision_free_path_is_kept_and_recorded(tmp_path):
    taken = TakenNames()
    p = tmp_path / "a.png"
    assert resolve_collision(p, "error", taken) == p
    assert p in taken


def test_suffix_avoids_disk_and_batch(tmp_path):
    (tmp_path / "a.png").write_bytes(b"x")
    (tmp_path / "a-1.png").write_bytes(b"x")
    taken = TakenNames([tmp_path / "a-2.png"])
    assert resolve_collision(tmp_path / "a.png", "suffix", taken) == tmp_path / "a-3.png"
    assert resolve_collision(tmp_path / "a.png", "suffix", taken) == tmp_path / "a-4.png"
    # names without an extension too
    (tmp_path / "noext").write_bytes(b"x")
    assert resolve_collision(tmp_path / "noext", "suffix", TakenNames()) == tmp_path / "noext-1"


def test_overwrite_skip_error(tmp_path):
    p = tmp_path / "a.png"
    p.write_bytes(b"x")
    assert resolve_collision(p, "overwrite", TakenNames()) == p
    assert resolve_collision(p, "skip", TakenNames()) is None
    with pytest.raises(UsageError) as info:
        resolve_collision(p, "error", TakenNames())
    assert info.value.exit_code == 2
    assert info.value.message == f"{p} exists"
    with pytest.raises(UsageError):
        resolve_collision(p, "replace", TakenNames())


@pytest.mark.parametrize("mode", ["overwrite", "skip", "error", "suffix"])
def test_same_name_twice_in_one_batch_gets_a_suffix_in_every_mode(tmp_path, mode):
    taken = TakenNames()
    first = resolve_collision(tmp_path / "a.png", mode, taken)
    second = resolve_collision(tmp_path / "a.png", mode, taken)
    assert first == tmp_path / "a.png"
    assert second == tmp_path / "a-1.png"


def test_a_dangling_symlink_counts_as_existing(tmp_path):
    link = tmp_path / "a.png"
    os.symlink(tmp_path / "missing", link)
    assert resolve_collision(link, "suffix", TakenNames()) == tmp_path / "a-1.png"


def test_template_fields():
    assert naming.template_fields(None) == {"slug", "index"}
    assert naming.template_fields("{workflow}-{seed}") == {"workflow", "seed"}


def test_taken_names_check_each_name_once_however_many_there_are(tmp_path):
    # Each name's clash key is made once, when it is added, and once per question: asking about one name
    # never goes over every name chosen so far.
    from sogni_cli.media.naming import TakenNames, clash_key

    calls: list[str] = []

    def key(name: str) -> str:
        calls.append(name)
        return clash_key(name)

    taken = TakenNames(key=key)
    n = 300
    for i in range(n):
        assert resolve_collision(tmp_path / f"img-{i}.png", "suffix", taken) == tmp_path / f"img-{i}.png"
    assert len(calls) <= 2 * n  # one question and one addition per name (the old check made n * n / 2)
    assert len(taken) == n


def test_taken_names_clash_without_regard_to_case_or_unicode_form(tmp_path):
    from sogni_cli.media.naming import TakenNames

    taken = TakenNames()
    assert resolve_collision(tmp_path / "Fox.png", "suffix", taken) == tmp_path / "Fox.png"
    assert tmp_path / "fox.png" in taken and tmp_path / "FOX.PNG" in taken
    assert resolve_collision(tmp_path / "fox.png", "overwrite", taken) == tmp_path / "fox-1.png"
    assert resolve_collision(tmp_path / "FOX-1.png", "skip", taken) == tmp_path / "FOX-1-1.png"
    # "é" composed and decomposed are one name on macOS
    assert resolve_collision(tmp_path / "caf\u00e9.png", "suffix", taken) == tmp_path / "caf\u00e9.png"
    assert resolve_collision(tmp_path / "cafe\u0301.png", "suffix", taken) == tmp_path / "cafe\u0301-1.png"
    # many names: the rule holds for each
    for i in range(200):
        resolve_collision(tmp_path / f"Shot-{i}.png", "suffix", taken)
    assert resolve_collision(tmp_path / "shot-150.PNG", "suffix", taken) == tmp_path / "shot-150-1.PNG"
    assert tmp_path / "shot-199.png" in taken and tmp_path / "shot-200.png" not in taken
