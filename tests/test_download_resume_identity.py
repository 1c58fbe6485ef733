"""Where a part came from (its sidecar) and which saved file is which artifact (the download record).

A part is resumed only when its sidecar names the same artifact (same workflow id and index; without a
workflow id, the same URL path), with ``If-Range``; anything else starts from zero. A final name taken by
the same artifact (per the record) is listed as the output instead of being fetched again.
"""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import httpx
import pytest

from sogni_cli.core.errors import UsageError
from sogni_cli.media import downloads as dl
from sogni_cli.media.downloads import ArtifactRef, DownloadOptions, download_all

CDN = "https://cdn.sogni.ai"
SONG_A = b"RIFF" + bytes(range(256)) * 20  # two different songs of the same length
SONG_B = b"RIFF" + bytes(reversed(range(256))) * 20
ETAG_A, ETAG_B = '"etag-a"', '"etag-b"'


def opts(tmp_path: Path, **kw) -> DownloadOptions:
    kw.setdefault("output_dir", tmp_path / "out")
    return DownloadOptions(**kw)


def song_ref(wid: str, index: int = 1, sig: str = "1") -> ArtifactRef:
    return ArtifactRef(f"{CDN}/media/{wid}/s1-{index}.wav?expires=1800&signature={sig}", index=index, count=1,
                       workflow_id=wid, prompt="a song", content_type="audio/wav")


class Interrupting(httpx.SyncByteStream):
    """Sends ``data`` then raises KeyboardInterrupt (a Ctrl-C half-way through the body)."""

    def __init__(self, data: bytes):
        self.data = data

    def __iter__(self):
        yield self.data
        raise KeyboardInterrupt


def interrupted_download(httpx_mock, tmp_path, ref: ArtifactRef, body: bytes, etag: str | None, n: int = 3000,
                         last_modified: str | None = None) -> Path:
    """Start downloading ``ref`` and stop after ``n`` bytes as Ctrl-C does; returns the part."""
    headers = {"Content-Type": "audio/wav", "Content-Length": str(len(body))}
    if etag:
        headers["ETag"] = etag
    if last_modified:
        headers["Last-Modified"] = last_modified
    httpx_mock.add_response(url=ref.url, stream=Interrupting(body[:n]), headers=headers)
    with pytest.raises(KeyboardInterrupt):
        download_all([ref], opts(tmp_path))
    part = tmp_path / "out" / "a-song-1.wav.part"
    assert part.read_bytes() == body[:n]
    return part


def media_requests(httpx_mock) -> list[httpx.Request]:
    return [r for r in httpx_mock.get_requests() if r.url.host == "cdn.sogni.ai"]


# --------------------------------------------------------------------------------------------- sidecar


def test_an_interrupted_part_has_a_sidecar_naming_its_artifact_without_the_query(httpx_mock, tmp_path):
    part = interrupted_download(httpx_mock, tmp_path, song_ref("wf_A", sig="secret-sig"), SONG_A, ETAG_A,
                                last_modified="Wed, 01 Jan 2025 00:00:00 GMT")
    side = Path(str(part) + ".json")
    doc = json.loads(side.read_text())
    assert doc == {"version": 1, "url": f"{CDN}/media/wf_A/s1-1.wav", "workflow_id": "wf_A", "index": 1,
                   "etag": ETAG_A, "last_modified": "Wed, 01 Jan 2025 00:00:00 GMT", "total": len(SONG_A)}
    assert b"secret-sig" not in side.read_bytes() and b"signature" not in side.read_bytes()
    assert side.parent == tmp_path / "out"
    assert not [p for p in (tmp_path / "out").iterdir() if p.name.endswith(".tmp")]


def test_a_part_from_another_workflow_is_discarded_and_the_download_starts_from_zero(httpx_mock, tmp_path):
    """The same command run again starts a new workflow whose artifact gets the same name: no splice."""
    interrupted_download(httpx_mock, tmp_path, song_ref("wf_A"), SONG_A, ETAG_A)
    ref_b = song_ref("wf_B")
    httpx_mock.add_response(url=ref_b.url, content=SONG_B, headers={"Content-Type": "audio/wav", "ETag": ETAG_B})
    report = download_all([ref_b], opts(tmp_path))
    assert report.failed == []
    final = tmp_path / "out" / "a-song-1.wav"
    assert report.paths == [final]
    assert final.read_bytes() == SONG_B
    last = media_requests(httpx_mock)[-1]
    assert last.url.path == "/media/wf_B/s1-1.wav"
    assert "range" not in last.headers and "if-range" not in last.headers
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [dl.RECORD_NAME, "a-song-1.wav"]


def test_a_part_of_another_index_of_the_same_workflow_is_not_resumed(httpx_mock, tmp_path):
    interrupted_download(httpx_mock, tmp_path, song_ref("wf_A", index=1), SONG_A, ETAG_A)
    other = song_ref("wf_A", index=2)
    other.count = 2
    httpx_mock.add_response(url=other.url, content=SONG_B, headers={"Content-Type": "audio/wav"})
    report = download_all([other], opts(tmp_path, name_template="{slug}-1"))
    assert report.saved[0].path.read_bytes() == SONG_B
    assert "range" not in media_requests(httpx_mock)[-1].headers


def test_a_part_of_the_same_artifact_resumes_with_range_and_if_range(httpx_mock, tmp_path):
    """`workflow download ID`: a fresh record, a fresh signed query, the same workflow id and index."""
    interrupted_download(httpx_mock, tmp_path, song_ref("wf_A", sig="one"), SONG_A, ETAG_A)
    again = song_ref("wf_A", sig="two")
    httpx_mock.add_response(url=again.url, status_code=206, content=SONG_A[3000:],
                            headers={"Content-Range": f"bytes 3000-{len(SONG_A) - 1}/{len(SONG_A)}",
                                     "ETag": ETAG_A, "Content-Type": "audio/wav"})
    report = download_all([again], opts(tmp_path))
    assert report.failed == []
    assert report.saved[0].path.read_bytes() == SONG_A
    assert report.saved[0].bytes == len(SONG_A)
    last = media_requests(httpx_mock)[-1]
    assert last.headers["range"] == "bytes=3000-"
    assert last.headers["if-range"] == ETAG_A


def test_without_an_etag_if_range_carries_the_last_modified_date(httpx_mock, tmp_path):
    when = "Tue, 07 Jan 2025 10:00:00 GMT"
    interrupted_download(httpx_mock, tmp_path, song_ref("wf_A"), SONG_A, "W/\"weak\"", last_modified=when)
    httpx_mock.add_response(url=song_ref("wf_A").url, status_code=206, content=SONG_A[3000:],
                            headers={"Content-Range": f"bytes 3000-{len(SONG_A) - 1}/{len(SONG_A)}"})
    report = download_all([song_ref("wf_A")], opts(tmp_path))
    assert report.saved[0].path.read_bytes() == SONG_A
    last = media_requests(httpx_mock)[-1]
    assert last.headers["range"] == "bytes=3000-" and last.headers["if-range"] == when


def test_a_200_answer_to_if_range_rewrites_the_part_from_zero(httpx_mock, tmp_path):
    """The resource changed: the server ignores the Range and sends the whole new file."""
    interrupted_download(httpx_mock, tmp_path, song_ref("wf_A"), SONG_A, ETAG_A)
    httpx_mock.add_response(url=song_ref("wf_A").url, status_code=200, content=SONG_B,
                            headers={"ETag": ETAG_B, "Content-Type": "audio/wav"})
    report = download_all([song_ref("wf_A")], opts(tmp_path))
    assert report.failed == []
    assert report.saved[0].path.read_bytes() == SONG_B
    assert report.saved[0].bytes == len(SONG_B)
    reqs = media_requests(httpx_mock)
    assert len(reqs) == 2 and reqs[-1].headers["if-range"] == ETAG_A
    record = dl.read_record(tmp_path / "out")
    assert record["a-song-1.wav"]["etag"] == ETAG_B


def test_a_206_with_another_etag_restarts_from_zero(httpx_mock, tmp_path):
    """A server that ignores If-Range and resumes a different file is not believed."""
    interrupted_download(httpx_mock, tmp_path, song_ref("wf_A"), SONG_A, ETAG_A)
    url = song_ref("wf_A").url
    httpx_mock.add_response(url=url, match_headers={"Range": "bytes=3000-"}, status_code=206, content=SONG_B[3000:],
                            headers={"Content-Range": f"bytes 3000-{len(SONG_B) - 1}/{len(SONG_B)}", "ETag": ETAG_B})
    httpx_mock.add_response(url=url, status_code=200, content=SONG_B, headers={"ETag": ETAG_B})
    report = download_all([song_ref("wf_A")], opts(tmp_path))
    assert report.saved[0].path.read_bytes() == SONG_B
    assert [r.headers.get("range") for r in media_requests(httpx_mock)[1:]] == ["bytes=3000-", None]


def test_a_part_without_a_sidecar_is_not_trusted(httpx_mock, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "a-song-1.wav.part").write_bytes(SONG_A[:3000])  # left by an older version
    ref = song_ref("wf_B")
    httpx_mock.add_response(url=ref.url, content=SONG_B, headers={"Content-Type": "audio/wav"})
    report = download_all([ref], opts(tmp_path))
    assert report.saved[0].path.read_bytes() == SONG_B
    (req,) = media_requests(httpx_mock)
    assert "range" not in req.headers


@pytest.mark.parametrize("sidecar", [b"not json", b"[1, 2]", json.dumps({"version": 99}).encode()])
def test_a_part_with_an_unreadable_sidecar_is_not_trusted(httpx_mock, tmp_path, sidecar):
    out = tmp_path / "out"
    out.mkdir()
    (out / "a-song-1.wav.part").write_bytes(SONG_A[:3000])
    (out / "a-song-1.wav.part.json").write_bytes(sidecar)
    ref = song_ref("wf_A")
    httpx_mock.add_response(url=ref.url, content=SONG_A, headers={"Content-Type": "audio/wav"})
    report = download_all([ref], opts(tmp_path))
    assert report.saved[0].path.read_bytes() == SONG_A
    assert "range" not in media_requests(httpx_mock)[0].headers


def test_without_a_workflow_id_the_url_path_decides(httpx_mock, tmp_path):
    first = ArtifactRef(f"{CDN}/x/clip.wav?sig=1", prompt="a song")
    interrupted_download(httpx_mock, tmp_path, first, SONG_A, ETAG_A)
    # the same path with another query string resumes
    same = ArtifactRef(f"{CDN}/x/clip.wav?sig=2", prompt="a song")
    httpx_mock.add_response(url=same.url, status_code=206, content=SONG_A[3000:],
                            headers={"Content-Range": f"bytes 3000-{len(SONG_A) - 1}/{len(SONG_A)}"})
    assert download_all([same], opts(tmp_path)).saved[0].path.read_bytes() == SONG_A
    assert media_requests(httpx_mock)[-1].headers["range"] == "bytes=3000-"
    # another path under the same name starts from zero
    os.unlink(tmp_path / "out" / "a-song-1.wav")
    interrupted_download(httpx_mock, tmp_path, first, SONG_A, ETAG_A)
    other = ArtifactRef(f"{CDN}/y/clip.wav?sig=1", prompt="a song")
    httpx_mock.add_response(url=other.url, content=SONG_B, headers={"Content-Type": "audio/wav"})
    assert download_all([other], opts(tmp_path)).saved[0].path.read_bytes() == SONG_B
    assert "range" not in media_requests(httpx_mock)[-1].headers


def test_the_sidecar_goes_when_the_file_is_renamed_into_place(httpx_mock, tmp_path):
    interrupted_download(httpx_mock, tmp_path, song_ref("wf_A"), SONG_A, ETAG_A)
    httpx_mock.add_response(url=song_ref("wf_A").url, status_code=206, content=SONG_A[3000:],
                            headers={"Content-Range": f"bytes 3000-{len(SONG_A) - 1}/{len(SONG_A)}"})
    download_all([song_ref("wf_A")], opts(tmp_path))
    names = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert names == [dl.RECORD_NAME, "a-song-1.wav"]


def test_a_corrupt_image_drops_the_part_and_its_sidecar(httpx_mock, tmp_path):
    ref = ArtifactRef(f"{CDN}/a.png", workflow_id="wf_A", prompt="pic")
    httpx_mock.add_response(url=ref.url, content=b"\x89PNG\r\n\x1a\n" + b"\0" * 100, headers={"Content-Type": "image/png"})
    report = download_all([ref], opts(tmp_path))
    assert "not a valid image" in report.failed[0][1]
    assert list((tmp_path / "out").iterdir()) == []


# --------------------------------------------------------------------------------------------- record


def png(color) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (8, 8), color).save(buf, format="PNG")
    return buf.getvalue()


BIRD_1, BIRD_2, OTHER = png((1, 2, 3)), png((4, 5, 6)), png((7, 8, 9))


def bird_refs(wid: str, sig: str) -> list[ArtifactRef]:
    return [ArtifactRef(f"{CDN}/media/{wid}/a{i}.png?sig={sig}", index=i, count=2, workflow_id=wid, prompt="a bird",
                        content_type="image/png") for i in (1, 2)]


def save_birds(httpx_mock, tmp_path, wid="wf_A", bodies=(BIRD_1, BIRD_2), **kw):
    for ref, body in zip(bird_refs(wid, "first"), bodies):
        httpx_mock.add_response(url=ref.url, content=body, headers={"Content-Type": "image/png"})
    report = download_all(bird_refs(wid, "first"), opts(tmp_path, **kw))
    assert report.failed == []
    return report


@pytest.mark.parametrize("mode", ["suffix", "skip", "error"])
def test_the_same_artifact_already_saved_is_listed_not_fetched_again(httpx_mock, tmp_path, mode):
    save_birds(httpx_mock, tmp_path)
    before = len(httpx_mock.get_requests())
    report = download_all(bird_refs("wf_A", "second"), opts(tmp_path, on_exists=mode))
    assert len(httpx_mock.get_requests()) == before  # nothing fetched, not even a header
    out = tmp_path / "out"
    assert report.paths == [out / "a-bird-1.png", out / "a-bird-2.png"]
    assert all(s.present and s.skipped for s in report.saved)
    assert [s.sha256 for s in report.saved] == [dl_sha(BIRD_1), dl_sha(BIRD_2)]
    assert [s.bytes for s in report.saved] == [len(BIRD_1), len(BIRD_2)]
    assert report.saved[0].content_type == "image/png"
    assert sorted(p.name for p in out.iterdir()) == [dl.RECORD_NAME, "a-bird-1.png", "a-bird-2.png"]


def dl_sha(b: bytes) -> str:
    import hashlib

    return hashlib.sha256(b).hexdigest()


def test_only_the_missing_one_is_fetched_after_a_partial_save(httpx_mock, tmp_path):
    """`image "a bird" -n 2` saved one file and exited 8; `workflow download ID` fetches only the other."""
    first, second = bird_refs("wf_A", "first")
    httpx_mock.add_response(url=first.url, content=BIRD_1, headers={"Content-Type": "image/png"})
    httpx_mock.add_response(url=second.url, status_code=400)
    report = download_all([first, second], opts(tmp_path))
    assert len(report.saved) == 1 and len(report.failed) == 1
    again = bird_refs("wf_A", "second")
    httpx_mock.add_response(url=again[1].url, content=BIRD_2, headers={"Content-Type": "image/png"})
    report = download_all(again, opts(tmp_path))
    out = tmp_path / "out"
    assert report.paths == [out / "a-bird-1.png", out / "a-bird-2.png"]
    assert [s.present for s in report.saved] == [True, False]
    assert [r.url.query for r in httpx_mock.get_requests()] == [b"sig=first", b"sig=first", b"sig=second"]
    assert [r.url.path for r in httpx_mock.get_requests()][-1] == "/media/wf_A/a2.png"
    # the second batch's entry went to the record's journal
    assert sorted(p.name for p in out.iterdir()) == [dl.RECORD_NAME, dl.JOURNAL_NAME, "a-bird-1.png", "a-bird-2.png"]


def test_overwrite_fetches_again(httpx_mock, tmp_path):
    save_birds(httpx_mock, tmp_path)
    for ref, body in zip(bird_refs("wf_A", "second"), (BIRD_1, BIRD_2)):
        httpx_mock.add_response(url=ref.url, content=body, headers={"Content-Type": "image/png"})
    report = download_all(bird_refs("wf_A", "second"), opts(tmp_path, on_exists="overwrite"))
    assert [s.present for s in report.saved] == [False, False]
    assert len(httpx_mock.get_requests()) == 4
    assert (tmp_path / "out" / "a-bird-1.png").read_bytes() == BIRD_1


def test_a_different_artifact_under_the_same_name_gets_a_suffix(httpx_mock, tmp_path):
    save_birds(httpx_mock, tmp_path, wid="wf_A")
    refs = bird_refs("wf_B", "first")
    httpx_mock.add_response(url=refs[0].url, content=OTHER, headers={"Content-Type": "image/png"})
    httpx_mock.add_response(url=refs[1].url, content=OTHER, headers={"Content-Type": "image/png"})
    report = download_all(refs, opts(tmp_path))
    out = tmp_path / "out"
    assert report.paths == [out / "a-bird-1-1.png", out / "a-bird-2-1.png"]
    assert not any(s.present for s in report.saved)
    assert (out / "a-bird-1.png").read_bytes() == BIRD_1 and (out / "a-bird-1-1.png").read_bytes() == OTHER
    # and both workflows are known now: running either again fetches nothing
    n = len(httpx_mock.get_requests())
    again_b = download_all(bird_refs("wf_B", "x"), opts(tmp_path))
    again_a = download_all(bird_refs("wf_A", "x"), opts(tmp_path))
    assert len(httpx_mock.get_requests()) == n
    assert again_b.paths == [out / "a-bird-1-1.png", out / "a-bird-2-1.png"]
    assert again_a.paths == [out / "a-bird-1.png", out / "a-bird-2.png"]


def test_skip_keeps_a_different_file_without_calling_it_present(httpx_mock, tmp_path):
    save_birds(httpx_mock, tmp_path, wid="wf_A")
    report = download_all(bird_refs("wf_B", "first"), opts(tmp_path, on_exists="skip"))
    assert [s.skipped for s in report.saved] == [True, True]
    assert [s.present for s in report.saved] == [False, False]


def test_a_file_the_record_does_not_know_is_not_taken_for_the_artifact(httpx_mock, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "a-bird-1.png").write_bytes(BIRD_1)  # same bytes, but saved by hand
    ref = bird_refs("wf_A", "first")[0]
    httpx_mock.add_response(url=ref.url, content=BIRD_1, headers={"Content-Type": "image/png"})
    report = download_all([ref], opts(tmp_path))
    assert report.paths == [out / "a-bird-1-1.png"]


def test_a_file_changed_since_it_was_saved_is_not_taken_for_the_artifact(httpx_mock, tmp_path):
    save_birds(httpx_mock, tmp_path)
    out = tmp_path / "out"
    (out / "a-bird-1.png").write_bytes(OTHER + b"edited")
    refs = bird_refs("wf_A", "second")
    httpx_mock.add_response(url=refs[0].url, content=BIRD_1, headers={"Content-Type": "image/png"})
    report = download_all(refs, opts(tmp_path))
    assert report.paths == [out / "a-bird-1-1.png", out / "a-bird-2.png"]
    assert [s.present for s in report.saved] == [False, True]


def test_the_name_known_only_from_the_answer_is_still_recognised(httpx_mock, tmp_path):
    # no extension in the URL and no declared type: the name comes from the answer's content type
    ref = ArtifactRef(f"{CDN}/media/wf_A/a1?sig=1", index=1, workflow_id="wf_A", prompt="a bird")
    httpx_mock.add_response(url=ref.url, content=BIRD_1, headers={"Content-Type": "image/png"})
    download_all([ref], opts(tmp_path))
    ref2 = ArtifactRef(f"{CDN}/media/wf_A/a1?sig=2", index=1, workflow_id="wf_A", prompt="a bird")
    httpx_mock.add_response(url=ref2.url, content=BIRD_1, headers={"Content-Type": "image/png"})
    report = download_all([ref2], opts(tmp_path))
    assert report.paths == [tmp_path / "out" / "a-bird-1.png"] and report.saved[0].present
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [dl.RECORD_NAME, "a-bird-1.png"]


def test_check_on_exists_lets_the_same_artifact_through(httpx_mock, tmp_path):
    save_birds(httpx_mock, tmp_path)
    dl.check_on_exists(bird_refs("wf_A", "again"), opts(tmp_path, on_exists="error"))
    with pytest.raises(UsageError):
        dl.check_on_exists(bird_refs("wf_B", "again"), opts(tmp_path, on_exists="error"))


def test_the_record_holds_identity_not_query_strings_and_survives_corruption(httpx_mock, tmp_path):
    save_birds(httpx_mock, tmp_path)
    record_file = tmp_path / "out" / dl.RECORD_NAME
    raw = record_file.read_text()
    assert "sig=" not in raw
    entry = json.loads(raw)["files"]["a-bird-2.png"]
    assert entry["url"] == f"{CDN}/media/wf_A/a2.png" and entry["workflow_id"] == "wf_A" and entry["index"] == 2
    assert entry["bytes"] == len(BIRD_2) and entry["sha256"] == dl_sha(BIRD_2)
    record_file.write_text("{broken")
    refs = bird_refs("wf_A", "again")
    for ref, body in zip(refs, (BIRD_1, BIRD_2)):
        httpx_mock.add_response(url=ref.url, content=body, headers={"Content-Type": "image/png"})
    report = download_all(refs, opts(tmp_path))  # unknown again: suffixed, never wrongly skipped
    assert [s.path.name for s in report.saved] == ["a-bird-1-1.png", "a-bird-2-1.png"]
    assert set(json.loads(record_file.read_text())["files"]) == {"a-bird-1-1.png", "a-bird-2-1.png"}


def test_entries_for_deleted_files_are_dropped(httpx_mock, tmp_path):
    save_birds(httpx_mock, tmp_path)
    out = tmp_path / "out"
    os.unlink(out / "a-bird-1.png")
    ref = bird_refs("wf_A", "again")[0]
    httpx_mock.add_response(url=ref.url, content=BIRD_1, headers={"Content-Type": "image/png"})
    report = download_all([ref], opts(tmp_path))
    assert report.paths == [out / "a-bird-1.png"] and not report.saved[0].present
    assert set(dl.read_record(out)) == {"a-bird-1.png", "a-bird-2.png"}
    os.unlink(out / "a-bird-2.png")
    ref = bird_refs("wf_A", "again")[0]
    download_all([ref], opts(tmp_path))  # present: no write
    dl.forget_cached_records()  # a later process reads the record afresh (and prunes it)
    httpx_mock.add_response(url=bird_refs("wf_C", "x")[0].url, content=OTHER, headers={"Content-Type": "image/png"})
    download_all([bird_refs("wf_C", "x")[0]], opts(tmp_path))
    assert set(dl.read_record(out)) == {"a-bird-1.png", "a-bird-1-1.png"}


# --------------------------------------------------------------------------------------------- the command


def test_workflow_download_after_exit_8_does_not_duplicate(cli, httpx_mock, env_key, tmp_cwd):
    from tests.test_media_commands import FakeAPI, png_bytes

    api = FakeAPI(httpx_mock, n_artifacts=2)
    second = api.artifacts[1]["url"].split("?")[0].replace("https://cdn.sogni.test", "")
    good = api.media[second]
    api.media[second] = lambda request: httpx.Response(400)
    res = cli("image", "a bird", "-n", "2")
    assert res.exit_code == 8, res.stderr
    assert res.stdout.splitlines() == ["a-bird-1.png"]
    api.media[second] = good
    hits = len(api.media_hits)
    res = cli("workflow", "download", "wf_t1")
    assert res.exit_code == 0, res.stderr
    assert res.stdout.splitlines() == ["a-bird-1.png", "a-bird-2.png"]
    assert api.media_hits[hits:] == [second]
    assert "Saved 1 file(s) from workflow wf_t1; 1 already saved before." in res.stderr
    assert sorted(p.name for p in tmp_cwd.iterdir() if p.suffix == ".png") == ["a-bird-1.png", "a-bird-2.png"]
    assert (tmp_cwd / "a-bird-2.png").read_bytes() == good == png_bytes(9, 6)


def test_what_was_saved_before_a_ctrl_c_is_recorded(httpx_mock, tmp_path, monkeypatch):
    from sogni_cli.media import transfer

    monkeypatch.setattr(transfer, "RECORD_INTERVAL", 3600.0)  # only the end of the batch writes it
    first, second = bird_refs("wf_A", "first")
    httpx_mock.add_response(url=first.url, content=BIRD_1, headers={"Content-Type": "image/png"})
    httpx_mock.add_response(url=second.url, stream=Interrupting(BIRD_2[:20]), headers={"Content-Type": "image/png"})
    with pytest.raises(KeyboardInterrupt):
        download_all([first, second], opts(tmp_path, concurrency=1))
    assert set(dl.read_record(tmp_path / "out")) == {"a-bird-1.png"}


def test_a_record_changed_by_another_process_is_read_again(httpx_mock, tmp_path):
    save_birds(httpx_mock, tmp_path)
    out = tmp_path / "out"
    (out / "x.png").write_bytes(OTHER)
    st = os.lstat(out / "x.png")
    doc = json.loads((out / dl.RECORD_NAME).read_text())
    doc["files"]["x.png"] = dict(dl.identity(ArtifactRef(f"{CDN}/x.png", workflow_id="wf_X"), f"{CDN}/x.png"),
                                 bytes=st.st_size, mtime_ns=st.st_mtime_ns)
    dl.write_json_atomic(out / dl.RECORD_NAME, doc)  # another process
    ref = bird_refs("wf_C", "x")[0]
    httpx_mock.add_response(url=ref.url, content=OTHER, headers={"Content-Type": "image/png"})
    download_all([ref], opts(tmp_path))
    assert set(dl.read_record(out)) == {"a-bird-1.png", "a-bird-2.png", "x.png", "a-bird-1-1.png"}
    again = download_all([ArtifactRef(f"{CDN}/x.png?s=2", workflow_id="wf_X")], opts(tmp_path, name_template="x"))
    assert again.saved[0].present and again.paths == [out / "x.png"]
