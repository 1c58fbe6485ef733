"""The artifact download pipeline (contract §7): request shapes, hostile servers, resume, naming, manifest,
progress output. Mocked transport (pytest-httpx) for request/response shapes, a real local server for
socket behaviour."""

from __future__ import annotations

import hashlib
import http.server
import io
import json
import re
import threading
from pathlib import Path

import httpx
import pytest

from sogni_cli.core.errors import ExitCode, SogniError, UsageError
from tests.conftest import local_url, serving
from sogni_cli.media import downloads as dl
from sogni_cli.media import transfer
from sogni_cli.api.urls import media_url_problem
from sogni_cli.media.downloads import (ArtifactRef, DownloadOptions, SavedFile, download_all,
                                       plan_paths, write_manifest)
from sogni_cli.core.progress import NullProgress, format_bytes
from sogni_cli.render.progress import PlainProgress, RichProgress, make_progress

CDN = "https://cdn.sogni.ai/runs/r_abc"


def png_bytes(size=(8, 8), color=(200, 30, 30)) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, format="PNG")
    return buf.getvalue()


PNG = png_bytes()
BLOB = bytes(range(256)) * 40  # 10240 bytes of non-image data


def sha(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()


def opts(tmp_path: Path, **kw) -> DownloadOptions:
    kw.setdefault("output_dir", tmp_path / "out")
    return DownloadOptions(**kw)


class Sleeps(list):
    def __call__(self, seconds):
        self.append(seconds)


def files_under(root: Path) -> set[str]:
    """Everything in ``root`` but the download record (tests/test_download_resume_identity.py covers it)."""
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.name != dl.RECORD_NAME}


def no_credentials(request: httpx.Request) -> bool:
    names = {k.lower() for k in request.headers.keys()}
    return not names & {"authorization", "api-key", "x-api-key", "cookie", "proxy-authorization"}


# ---------------------------------------------------------------------------------------------------
# basics
# ---------------------------------------------------------------------------------------------------

def test_downloads_in_order_with_hashes_and_no_credentials(httpx_mock, tmp_path):
    httpx_mock.add_response(url=f"{CDN}/img-1.png", content=PNG, headers={"Content-Type": "image/png"})
    httpx_mock.add_response(url=f"{CDN}/clip-2.mp4", content=BLOB, headers={"Content-Type": "video/mp4"})
    refs = [ArtifactRef(f"{CDN}/img-1.png", index=1, count=2, prompt="A red fox"),
            ArtifactRef(f"{CDN}/clip-2.mp4", index=2, count=2, prompt="A red fox")]
    report = download_all(refs, opts(tmp_path))
    assert report.failed == []
    out = tmp_path / "out"
    assert [s.path for s in report.saved] == [out / "a-red-fox-1.png", out / "a-red-fox-2.mp4"]
    assert (out / "a-red-fox-1.png").read_bytes() == PNG
    assert (out / "a-red-fox-2.mp4").read_bytes() == BLOB
    assert [s.sha256 for s in report.saved] == [sha(PNG), sha(BLOB)]
    assert [s.bytes for s in report.saved] == [len(PNG), len(BLOB)]
    assert report.saved[1].content_type == "video/mp4"
    assert files_under(out) == {"a-red-fox-1.png", "a-red-fox-2.mp4"}
    for req in httpx_mock.get_requests():
        assert no_credentials(req)
        assert req.headers["accept-encoding"] == "identity"
        assert req.headers["user-agent"].startswith("sogni-cli/")
        assert "range" not in req.headers


def test_a_cookie_a_media_host_sets_is_never_sent_back(httpx_mock, tmp_path):
    httpx_mock.add_response(url=f"{CDN}/img-1.png", content=PNG, headers={"Set-Cookie": "track=1; Path=/"})
    httpx_mock.add_response(url=f"{CDN}/img-2.png", content=PNG)
    refs = [ArtifactRef(f"{CDN}/img-{i}.png", index=i, count=2, prompt="a fox") for i in (1, 2)]
    report = download_all(refs, opts(tmp_path, concurrency=1))
    assert report.failed == [] and len(report.saved) == 2
    assert [r.headers.get("cookie") for r in httpx_mock.get_requests()] == [None, None]


def test_a_client_with_credentials_is_refused_before_sending(httpx_mock, tmp_path):
    client = httpx.Client(headers={"Authorization": "Bearer k"})
    with pytest.raises(SogniError) as info:
        download_all([ArtifactRef(f"{CDN}/a.png")], opts(tmp_path), client=client)
    assert info.value.exit_code == ExitCode.INTERNAL
    assert httpx_mock.get_requests() == []
    client2 = httpx.Client(headers={"api-key": "k"})
    with pytest.raises(SogniError):
        download_all([ArtifactRef(f"{CDN}/a.png")], opts(tmp_path), client=client2)


def test_a_clean_passed_in_client_is_used(httpx_mock, tmp_path):
    httpx_mock.add_response(url=f"{CDN}/a.png", content=PNG)
    with httpx.Client() as client:
        report = download_all([ArtifactRef(f"{CDN}/a.png", tool="t")], opts(tmp_path), client=client)
        assert not client.is_closed
    assert report.saved[0].path.read_bytes() == PNG


def test_empty_list_sends_nothing(tmp_path):
    report = download_all([], opts(tmp_path))
    assert report.saved == [] and report.failed == []


# ---------------------------------------------------------------------------------------------------
# names never come from the server
# ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("disposition", [
    "attachment; filename=\"/etc/passwd\"",
    "attachment; filename=\"..\\\\..\\\\evil.png\"",
    "attachment; filename=\"a\\x00b.png\"",
    "attachment; filename*=UTF-8''..%2F..%2F.bashrc",
])
def test_content_disposition_is_ignored(httpx_mock, tmp_path, disposition):
    httpx_mock.add_response(url=f"{CDN}/img.png", content=PNG,
                            headers={"Content-Type": "image/png", "Content-Disposition": disposition})
    before = files_under(tmp_path)
    report = download_all([ArtifactRef(f"{CDN}/img.png", prompt="cat")], opts(tmp_path))
    assert report.failed == []
    assert report.saved[0].path == tmp_path / "out" / "cat-1.png"
    assert files_under(tmp_path) - before == {"out", "out/cat-1.png"}


@pytest.mark.parametrize("url", [
    "https://cdn.sogni.ai/runs/../../../etc/img.png",
    "https://cdn.sogni.ai/runs/..%2F..%2F..%2Fimg.png",
    "https://cdn.sogni.ai/runs/x/%2F..%2F..%2Fimg.png",
])
def test_traversal_in_the_url_path_still_gives_a_safe_file(httpx_mock, tmp_path, url):
    httpx_mock.add_response(content=PNG, headers={"Content-Type": "image/png"})
    before = files_under(tmp_path)
    report = download_all([ArtifactRef(url, tool="sogni_generate_image")], opts(tmp_path))
    assert report.failed == []
    assert report.saved[0].path == tmp_path / "out" / "sogni-generate-image-1.png"
    assert files_under(tmp_path) - before == {"out", "out/sogni-generate-image-1.png"}


def test_extension_not_on_the_allowlist_is_refused(httpx_mock, tmp_path):
    httpx_mock.add_response(url=f"{CDN}/payload", content=b"#!/bin/sh\n", headers={"Content-Type": "application/x-sh"})
    report = download_all([ArtifactRef(f"{CDN}/payload")], opts(tmp_path))
    assert report.saved == []
    assert "not allowed" in report.failed[0][1]
    assert files_under(tmp_path / "out") == set()


def test_name_from_the_response_content_type_when_not_known_in_advance(httpx_mock, tmp_path):
    httpx_mock.add_response(url=f"{CDN}/result?sig=1", content=PNG, headers={"Content-Type": "image/png"})
    ref = ArtifactRef(f"{CDN}/result?sig=1", prompt="owl")
    assert plan_paths([ref], opts(tmp_path)) == [None]
    report = download_all([ref], opts(tmp_path))
    assert report.saved[0].path == tmp_path / "out" / "owl-1.png"


def test_plan_paths(tmp_path):
    o = opts(tmp_path, name_template="{workflow}-{index}")
    refs = [ArtifactRef("", content_type="image/png", workflow_id="wf1"),
            ArtifactRef("", content_type="image/png"),
            ArtifactRef(f"{CDN}/x.mp4", workflow_id="wf2", index=2),
            ArtifactRef(f"{CDN}/x", workflow_id="wf3")]
    assert plan_paths(refs, o) == [o.output_dir / "wf1-1.png", None, o.output_dir / "wf2-2.mp4", None]
    with pytest.raises(UsageError):
        plan_paths(refs, opts(tmp_path, name_template="{nope}"))


# ---------------------------------------------------------------------------------------------------
# scheme / host rule and redirects
# ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("url,allowed", [
    ("https://cdn.sogni.ai/a.png", True),
    ("https://203.0.113.9/a.png", True),
    ("http://127.0.0.1:8080/a.png", True),
    ("http://127.9.8.7/a.png", True),
    ("http://localhost/a.png", True),
    ("http://[::1]:9/a.png", True),
    ("http://cdn.sogni.ai/a.png", False),
    ("http://10.0.0.1/a.png", False),
    ("http://127.0.0.1.evil.com/a.png", False),
    ("http://[::2]/a.png", False),
    ("ftp://127.0.0.1/a.png", False),
    ("file:///etc/passwd", False),
    ("https://user:pw@cdn.sogni.ai/a.png", False),
    ("https:///a.png", False),
    ("not a url", False),
])
def test_media_url_rule(url, allowed):
    assert (media_url_problem(url) is None) is allowed


def test_plain_http_to_a_remote_host_sends_nothing(httpx_mock, tmp_path):
    report = download_all([ArtifactRef("http://cdn.sogni.ai/a.png")], opts(tmp_path))
    assert report.saved == []
    assert "http://" in report.failed[0][1] and "https" in report.failed[0][1]
    assert httpx_mock.get_requests() == []


def test_redirect_to_plain_http_is_refused(httpx_mock, tmp_path):
    httpx_mock.add_response(url=f"{CDN}/a.png", status_code=302, headers={"Location": "http://evil.example/a.png"})
    report = download_all([ArtifactRef(f"{CDN}/a.png")], opts(tmp_path))
    assert "redirect target" in report.failed[0][1]
    assert [str(r.url) for r in httpx_mock.get_requests()] == [f"{CDN}/a.png"]


def test_redirects_are_followed_and_rechecked(httpx_mock, tmp_path):
    httpx_mock.add_response(url=f"{CDN}/a.png", status_code=301, headers={"Location": "/moved/a.png"})
    httpx_mock.add_response(url="https://cdn.sogni.ai/moved/a.png", status_code=307,
                            headers={"Location": "https://bucket.s3.amazonaws.com/a.png?sig=1"})
    httpx_mock.add_response(url="https://bucket.s3.amazonaws.com/a.png?sig=1", content=PNG)
    report = download_all([ArtifactRef(f"{CDN}/a.png", prompt="p")], opts(tmp_path))
    assert report.saved[0].path.read_bytes() == PNG
    assert all(no_credentials(r) for r in httpx_mock.get_requests())


def test_redirect_loop_stops_after_five(httpx_mock, tmp_path):
    httpx_mock.add_response(url=f"{CDN}/a.png", status_code=302, headers={"Location": f"{CDN}/b.png"},
                            is_reusable=True)
    httpx_mock.add_response(url=f"{CDN}/b.png", status_code=302, headers={"Location": f"{CDN}/a.png"},
                            is_reusable=True)
    report = download_all([ArtifactRef(f"{CDN}/a.png")], opts(tmp_path))
    assert "too many redirects" in report.failed[0][1]
    assert len(httpx_mock.get_requests()) == 6  # the first request and five redirects


# ---------------------------------------------------------------------------------------------------
# body length and size limit
# ---------------------------------------------------------------------------------------------------

def test_body_longer_than_content_length_fails_without_any_file(httpx_mock, tmp_path):
    httpx_mock.add_response(url=f"{CDN}/a.mp4", content=BLOB, headers={"Content-Length": str(len(BLOB) - 10)})
    report = download_all([ArtifactRef(f"{CDN}/a.mp4")], opts(tmp_path))
    assert "longer" in report.failed[0][1]
    assert files_under(tmp_path / "out") == set()


def test_short_body_is_resumed_with_range(httpx_mock, tmp_path):
    half = len(BLOB) // 2
    httpx_mock.add_response(url=f"{CDN}/a.mp4", content=BLOB[:half], headers={"Content-Length": str(len(BLOB))})
    httpx_mock.add_response(url=f"{CDN}/a.mp4", match_headers={"Range": f"bytes={half}-"}, status_code=206,
                            content=BLOB[half:],
                            headers={"Content-Range": f"bytes {half}-{len(BLOB) - 1}/{len(BLOB)}"})
    sleeps = Sleeps()
    report = download_all([ArtifactRef(f"{CDN}/a.mp4", prompt="v")], opts(tmp_path), sleep=sleeps)
    assert report.failed == []
    assert report.saved[0].path.read_bytes() == BLOB
    assert report.saved[0].sha256 == sha(BLOB)
    assert len(sleeps) == 1
    assert files_under(tmp_path / "out") == {"v-1.mp4"}


def test_short_body_every_time_fails_and_keeps_the_part(httpx_mock, tmp_path):
    httpx_mock.add_response(url=f"{CDN}/a.mp4", content=BLOB[:100], headers={"Content-Length": str(len(BLOB))})
    # the retries ask for the rest; this server keeps failing in the same way
    httpx_mock.add_response(url=f"{CDN}/a.mp4", status_code=206, content=b"",
                            headers={"Content-Range": f"bytes 100-{len(BLOB) - 1}/{len(BLOB)}"}, is_reusable=True)
    sleeps = Sleeps()
    report = download_all([ArtifactRef(f"{CDN}/a.mp4", prompt="v")], opts(tmp_path, retries=2), sleep=sleeps)
    assert report.saved == []
    assert "ended early" in report.failed[0][1]
    assert len(sleeps) == 2
    assert files_under(tmp_path / "out") == {"v-1.mp4.part", "v-1.mp4.part.json"}
    assert (tmp_path / "out" / "v-1.mp4.part").read_bytes() == BLOB[:100]


def test_content_length_over_the_limit_is_refused_before_reading(httpx_mock, tmp_path):
    httpx_mock.add_response(url=f"{CDN}/a.mp4", content=BLOB)
    report = download_all([ArtifactRef(f"{CDN}/a.mp4")], opts(tmp_path, max_size=1000))
    assert "size limit" in report.failed[0][1]
    assert files_under(tmp_path / "out") == set()


class CountingStream(httpx.SyncByteStream):
    def __init__(self, chunk: bytes, n: int):
        self.chunk, self.n, self.sent = chunk, n, 0

    def __iter__(self):
        for _ in range(self.n):
            self.sent += 1
            yield self.chunk


def test_body_over_the_limit_without_length_aborts_as_soon_as_exceeded(httpx_mock, tmp_path):
    stream = CountingStream(b"\0" * 65536, 1000)  # 64 MiB on offer
    httpx_mock.add_response(url=f"{CDN}/a.mp4", stream=stream)
    report = download_all([ArtifactRef(f"{CDN}/a.mp4")], opts(tmp_path, max_size=200_000))
    assert "size limit" in report.failed[0][1]
    assert stream.sent == 4  # 4 × 64 KiB is the first read past 200 000 bytes
    assert files_under(tmp_path / "out") == set()


# ---------------------------------------------------------------------------------------------------
# resume
# ---------------------------------------------------------------------------------------------------

def _with_part(tmp_path: Path, name: str, data: bytes, url: str = f"{CDN}/a.mp4") -> Path:
    """A part left by an earlier download of ``url`` (with its sidecar)."""
    out = tmp_path / "out"
    out.mkdir(parents=True, exist_ok=True)
    part = out / (name + ".part")
    part.write_bytes(data)
    dl.write_sidecar(part, dl.identity(ArtifactRef(url), url))
    return part


def test_resume_sends_range_and_accepts_a_matching_206(httpx_mock, tmp_path):
    n = 4000
    _with_part(tmp_path, "v-1.mp4", BLOB[:n])
    httpx_mock.add_response(url=f"{CDN}/a.mp4", status_code=206, content=BLOB[n:],
                            headers={"Content-Range": f"bytes {n}-{len(BLOB) - 1}/{len(BLOB)}"})
    report = download_all([ArtifactRef(f"{CDN}/a.mp4", prompt="v")], opts(tmp_path))
    assert report.failed == []
    req = httpx_mock.get_requests()[0]
    assert req.headers["range"] == f"bytes={n}-"
    saved = report.saved[0]
    assert saved.path.read_bytes() == BLOB and saved.bytes == len(BLOB) and saved.sha256 == sha(BLOB)
    assert files_under(tmp_path / "out") == {"v-1.mp4"}


def test_resume_answered_with_200_restarts_from_zero(httpx_mock, tmp_path):
    _with_part(tmp_path, "v-1.mp4", b"garbage-that-must-go")
    httpx_mock.add_response(url=f"{CDN}/a.mp4", status_code=200, content=BLOB)
    report = download_all([ArtifactRef(f"{CDN}/a.mp4", prompt="v")], opts(tmp_path))
    assert report.saved[0].path.read_bytes() == BLOB
    assert report.saved[0].sha256 == sha(BLOB)


def test_mismatched_content_range_restarts_once_cleanly(httpx_mock, tmp_path):
    n = 4000
    _with_part(tmp_path, "v-1.mp4", BLOB[:n])
    httpx_mock.add_response(url=f"{CDN}/a.mp4", match_headers={"Range": f"bytes={n}-"}, status_code=206,
                            content=BLOB[n - 10:], headers={"Content-Range": f"bytes {n - 10}-{len(BLOB) - 1}/{len(BLOB)}"})
    httpx_mock.add_response(url=f"{CDN}/a.mp4", status_code=200, content=BLOB)
    report = download_all([ArtifactRef(f"{CDN}/a.mp4", prompt="v")], opts(tmp_path))
    assert report.failed == []
    reqs = httpx_mock.get_requests()
    assert [r.headers.get("range") for r in reqs] == [f"bytes={n}-", None]
    assert report.saved[0].path.read_bytes() == BLOB


def test_mismatched_content_range_twice_fails(httpx_mock, tmp_path):
    n = 4000
    total = len(BLOB)
    _with_part(tmp_path, "v-1.mp4", BLOB[:n])
    bad = {"Content-Range": f"bytes 0-{total - 1}/{total}"}
    httpx_mock.add_response(url=f"{CDN}/a.mp4", match_headers={"Range": f"bytes={n}-"}, status_code=206,
                            content=BLOB, headers=bad)
    # the clean restart breaks off half way, and the resume of that is mismatched again
    httpx_mock.add_response(url=f"{CDN}/a.mp4", content=BLOB[:n], headers={"Content-Length": str(total)})
    httpx_mock.add_response(url=f"{CDN}/a.mp4", match_headers={"Range": f"bytes={n}-"}, status_code=206,
                            content=BLOB, headers=bad)
    report = download_all([ArtifactRef(f"{CDN}/a.mp4", prompt="v")], opts(tmp_path), sleep=Sleeps())
    assert report.saved == []
    assert "Content-Range" in report.failed[0][1]
    assert files_under(tmp_path / "out") == set()


@pytest.mark.parametrize("content_range", ["", "bytes 4000-5000/10240", "bytes 4000-10239/*", "items 4000-10239/10240",
                                           "bytes 4000-10240/10240"])
def test_other_bad_content_ranges_are_not_accepted(httpx_mock, tmp_path, content_range):
    n = 4000
    _with_part(tmp_path, "v-1.mp4", BLOB[:n])
    headers = {"Content-Range": content_range} if content_range else {}
    httpx_mock.add_response(url=f"{CDN}/a.mp4", match_headers={"Range": f"bytes={n}-"}, status_code=206,
                            content=BLOB[n:], headers=headers)
    httpx_mock.add_response(url=f"{CDN}/a.mp4", status_code=200, content=BLOB)
    report = download_all([ArtifactRef(f"{CDN}/a.mp4", prompt="v")], opts(tmp_path))
    assert report.saved[0].path.read_bytes() == BLOB
    assert len(httpx_mock.get_requests()) == 2


def test_complete_part_answered_with_416_is_kept(httpx_mock, tmp_path):
    _with_part(tmp_path, "v-1.png", PNG, f"{CDN}/a.png")
    httpx_mock.add_response(url=f"{CDN}/a.png", status_code=416, headers={"Content-Range": f"bytes */{len(PNG)}"})
    report = download_all([ArtifactRef(f"{CDN}/a.png", prompt="v")], opts(tmp_path))
    assert report.saved[0].path.read_bytes() == PNG
    assert report.saved[0].sha256 == sha(PNG)


def test_a_206_to_a_full_request_is_refused(httpx_mock, tmp_path):
    httpx_mock.add_response(url=f"{CDN}/a.mp4", status_code=206, content=BLOB,
                            headers={"Content-Range": f"bytes 0-{len(BLOB) - 1}/{len(BLOB)}"})
    report = download_all([ArtifactRef(f"{CDN}/a.mp4")], opts(tmp_path))
    assert "206" in report.failed[0][1]


# ---------------------------------------------------------------------------------------------------
# verification, refresh, retries
# ---------------------------------------------------------------------------------------------------

def test_corrupt_image_fails_and_leaves_nothing(httpx_mock, tmp_path):
    httpx_mock.add_response(url=f"{CDN}/a.png", content=PNG[:20] + b"\0" * 200, headers={"Content-Type": "image/png"})
    report = download_all([ArtifactRef(f"{CDN}/a.png")], opts(tmp_path))
    assert "not a valid image" in report.failed[0][1]
    assert files_under(tmp_path / "out") == set()


def test_image_verification_can_be_turned_off(httpx_mock, tmp_path):
    httpx_mock.add_response(url=f"{CDN}/a.png", content=b"not really a png")
    report = download_all([ArtifactRef(f"{CDN}/a.png")], opts(tmp_path, verify_images=False))
    assert report.saved[0].path.read_bytes() == b"not really a png"


def test_expired_link_is_refreshed_exactly_once(httpx_mock, tmp_path):
    httpx_mock.add_response(url=f"{CDN}/old.png", status_code=403)
    httpx_mock.add_response(url=f"{CDN}/new.png", content=PNG)
    calls = []

    def refresh(ref):
        calls.append(ref)
        return f"{CDN}/new.png"

    ref = ArtifactRef(f"{CDN}/old.png", workflow_id="wf_1", prompt="p")
    report = download_all([ref], opts(tmp_path, manifest=tmp_path / "m.jsonl"), refresh=refresh)
    assert calls == [ref]
    assert report.saved[0].path.read_bytes() == PNG
    assert report.saved[0].url == f"{CDN}/new.png"
    line = json.loads((tmp_path / "m.jsonl").read_text())
    assert line["url"] == f"{CDN}/new.png"


def test_refresh_is_not_repeated_when_the_fresh_link_fails_too(httpx_mock, tmp_path):
    httpx_mock.add_response(url=f"{CDN}/old.png", status_code=404)
    httpx_mock.add_response(url=f"{CDN}/new.png", status_code=403)
    calls = []
    report = download_all([ArtifactRef(f"{CDN}/old.png")], opts(tmp_path),
                          refresh=lambda ref: calls.append(ref) or f"{CDN}/new.png")
    assert len(calls) == 1
    assert "403" in report.failed[0][1]


def test_expired_link_without_refresh_fails(httpx_mock, tmp_path):
    httpx_mock.add_response(url=f"{CDN}/old.png", status_code=404)
    report = download_all([ArtifactRef(f"{CDN}/old.png")], opts(tmp_path))
    assert "404" in report.failed[0][1]
    assert len(httpx_mock.get_requests()) == 1


def test_server_errors_are_retried_with_backoff(httpx_mock, tmp_path):
    httpx_mock.add_response(url=f"{CDN}/a.png", status_code=503)
    httpx_mock.add_exception(httpx.ConnectError("refused"), url=f"{CDN}/a.png")
    httpx_mock.add_response(url=f"{CDN}/a.png", content=PNG)
    sleeps = Sleeps()
    report = download_all([ArtifactRef(f"{CDN}/a.png")], opts(tmp_path, retries=2), sleep=sleeps)
    assert report.failed == []
    assert len(sleeps) == 2
    assert 0.375 <= sleeps[0] <= 0.5 and 0.75 <= sleeps[1] <= 1.0  # the one backoff: 0.5 s, 1 s less jitter


def test_retries_run_out(httpx_mock, tmp_path):
    httpx_mock.add_response(url=f"{CDN}/a.png", status_code=502, is_reusable=True)
    sleeps = Sleeps()
    report = download_all([ArtifactRef(f"{CDN}/a.png")], opts(tmp_path, retries=3), sleep=sleeps)
    assert "502" in report.failed[0][1] and "after 3 retries" in report.failed[0][1]
    assert len(httpx_mock.get_requests()) == 4
    assert len(sleeps) == 3


def test_retry_after_is_honoured(httpx_mock, tmp_path):
    httpx_mock.add_response(url=f"{CDN}/a.png", status_code=429, headers={"Retry-After": "7"})
    httpx_mock.add_response(url=f"{CDN}/a.png", content=PNG)
    sleeps = Sleeps()
    download_all([ArtifactRef(f"{CDN}/a.png")], opts(tmp_path), sleep=sleeps)
    assert sleeps == [7.0]


def test_other_client_errors_are_not_retried(httpx_mock, tmp_path):
    httpx_mock.add_response(url=f"{CDN}/a.png", status_code=400)
    sleeps = Sleeps()
    report = download_all([ArtifactRef(f"{CDN}/a.png")], opts(tmp_path), sleep=sleeps)
    assert "400" in report.failed[0][1] and sleeps == []


# ---------------------------------------------------------------------------------------------------
# on-exists, manifest
# ---------------------------------------------------------------------------------------------------

def test_on_exists_error_is_raised_before_any_request(httpx_mock, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "cat-1.png").write_bytes(b"old")
    with pytest.raises(UsageError) as info:
        download_all([ArtifactRef(f"{CDN}/a.png", prompt="cat")], opts(tmp_path, on_exists="error"))
    assert info.value.exit_code == 2
    assert info.value.message == f"{out / 'cat-1.png'} exists"
    assert httpx_mock.get_requests() == []


def test_on_exists_error_for_a_name_known_only_from_the_answer(httpx_mock, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "cat-1.png").write_bytes(b"old")
    httpx_mock.add_response(url=f"{CDN}/a", content=PNG, headers={"Content-Type": "image/png"})
    report = download_all([ArtifactRef(f"{CDN}/a", prompt="cat")], opts(tmp_path, on_exists="error"))
    assert "exists" in report.failed[0][1]
    assert (out / "cat-1.png").read_bytes() == b"old"


def test_on_exists_skip_keeps_the_file_and_lists_it(httpx_mock, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "cat-1.png").write_bytes(b"old")
    report = download_all([ArtifactRef(f"{CDN}/a.png", prompt="cat")],
                          opts(tmp_path, on_exists="skip", manifest=tmp_path / "m.jsonl"))
    saved = report.saved[0]
    assert saved.skipped and saved.path == out / "cat-1.png" and saved.sha256 == sha(b"old") and saved.bytes == 3
    assert (out / "cat-1.png").read_bytes() == b"old"
    assert httpx_mock.get_requests() == []
    assert (tmp_path / "m.jsonl").read_text() == ""


def test_on_exists_overwrite_and_suffix(httpx_mock, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "cat-1.png").write_bytes(b"old")
    httpx_mock.add_response(url=f"{CDN}/a.png", content=PNG, is_reusable=True)
    rep = download_all([ArtifactRef(f"{CDN}/a.png", prompt="cat")], opts(tmp_path, on_exists="suffix"))
    assert rep.saved[0].path == out / "cat-1-1.png"
    assert (out / "cat-1.png").read_bytes() == b"old"
    rep = download_all([ArtifactRef(f"{CDN}/a.png", prompt="cat")], opts(tmp_path, on_exists="overwrite"))
    assert rep.saved[0].path == out / "cat-1.png"
    assert (out / "cat-1.png").read_bytes() == PNG


def test_bad_on_exists_value(tmp_path):
    with pytest.raises(UsageError):
        download_all([ArtifactRef(f"{CDN}/a.png")], opts(tmp_path, on_exists="clobber"))


def test_manifest_lines(httpx_mock, tmp_path):
    httpx_mock.add_response(url=f"{CDN}/a.png", content=PNG, headers={"Content-Type": "image/png"})
    httpx_mock.add_response(url=f"{CDN}/b.png", status_code=400)
    manifest = tmp_path / "m.jsonl"
    manifest.write_text('{"earlier": true}\n')
    args = {"prompt": "a fox", "width": 512}
    refs = [ArtifactRef(f"{CDN}/a.png", index=1, count=2, workflow_id="wf_9", tool="sogni_generate_image",
                        prompt="a fox", seed=7, model="flux", arguments=args),
            ArtifactRef(f"{CDN}/b.png", index=2, count=2)]
    report = download_all(refs, opts(tmp_path, manifest=manifest))
    lines = manifest.read_text().splitlines()
    assert lines[0] == '{"earlier": true}'
    assert len(lines) == 2
    rec = json.loads(lines[1])
    assert set(rec) == {"path", "sha256", "bytes", "content_type", "url", "workflow_id", "tool", "arguments",
                        "model", "seed", "time"}
    assert rec["path"] == str(report.saved[0].path)
    assert (rec["sha256"], rec["bytes"], rec["content_type"]) == (sha(PNG), len(PNG), "image/png")
    assert (rec["url"], rec["workflow_id"], rec["tool"], rec["model"], rec["seed"]) == \
        (f"{CDN}/a.png", "wf_9", "sogni_generate_image", "flux", 7)
    assert rec["arguments"] == args
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", rec["time"])


def test_write_manifest_with_a_fixed_time(tmp_path):
    import datetime as dt

    ref = ArtifactRef("https://x/a.png", tool="t")
    saved = [SavedFile(ref, tmp_path / "a.png", 3, "ab", "image/png"),
             SavedFile(ref, tmp_path / "b.png", 4, "cd", None, skipped=True)]
    now = dt.datetime(2025, 2, 3, 4, 5, 6, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    assert write_manifest(tmp_path / "m.jsonl", saved, now=now) == 1
    rec = json.loads((tmp_path / "m.jsonl").read_text())
    assert rec["time"] == "2025-02-03T02:05:06Z"
    assert rec["path"] == str(tmp_path / "a.png")


def test_saved_file_event(tmp_path):
    ref = ArtifactRef("https://x/a.png", workflow_id="w", tool="t")
    ev = SavedFile(ref, tmp_path / "a.png", 3, "ab", "image/png").to_event().to_json()
    assert ev == {"event": "artifact", "url": "https://x/a.png", "path": str(tmp_path / "a.png"),
                  "workflow_id": "w", "tool": "t", "content_type": "image/png", "bytes": 3, "sha256": "ab"}


# ---------------------------------------------------------------------------------------------------
# concurrency and interruption
# ---------------------------------------------------------------------------------------------------

def test_fifty_artifacts_at_once_run_concurrently(httpx_mock, tmp_path):
    conc = 6
    barrier = threading.Barrier(conc, timeout=10)
    seen = []
    lock = threading.Lock()

    def answer(request: httpx.Request):
        with lock:
            seen.append(str(request.url))
            first = len(seen) <= conc
        if first:
            barrier.wait()  # only passes when `conc` requests are in flight together
        i = int(request.url.path.rsplit("-", 1)[1].split(".")[0])
        return httpx.Response(200, content=BLOB + i.to_bytes(2, "big"), headers={"Content-Type": "video/mp4"})

    httpx_mock.add_callback(answer, is_reusable=True)
    refs = [ArtifactRef(f"{CDN}/clip-{i}.mp4", index=i, count=50, prompt="batch") for i in range(1, 51)]
    report = download_all(refs, opts(tmp_path, concurrency=conc))
    assert report.failed == []
    assert [s.path.name for s in report.saved] == [f"batch-{i}.mp4" for i in range(1, 51)]
    for i, s in enumerate(report.saved, 1):
        assert s.path.read_bytes() == BLOB + i.to_bytes(2, "big")
    assert len(set(seen)) == 50
    assert files_under(tmp_path / "out") == {f"batch-{i}.mp4" for i in range(1, 51)}


class InterruptingStream(httpx.SyncByteStream):
    def __init__(self, data: bytes):
        self.data = data

    def __iter__(self):
        yield self.data
        raise KeyboardInterrupt


def test_keyboard_interrupt_from_the_stream_leaves_only_the_part_and_resume_works(httpx_mock, tmp_path):
    n = 3000
    httpx_mock.add_response(url=f"{CDN}/a.mp4", stream=InterruptingStream(BLOB[:n]),
                            headers={"Content-Length": str(len(BLOB))})
    with pytest.raises(KeyboardInterrupt):
        download_all([ArtifactRef(f"{CDN}/a.mp4", prompt="v")], opts(tmp_path))
    assert files_under(tmp_path / "out") == {"v-1.mp4.part", "v-1.mp4.part.json"}
    assert (tmp_path / "out" / "v-1.mp4.part").read_bytes() == BLOB[:n]
    # the same command again resumes
    httpx_mock.add_response(url=f"{CDN}/a.mp4", match_headers={"Range": f"bytes={n}-"}, status_code=206,
                            content=BLOB[n:], headers={"Content-Range": f"bytes {n}-{len(BLOB) - 1}/{len(BLOB)}"})
    report = download_all([ArtifactRef(f"{CDN}/a.mp4", prompt="v")], opts(tmp_path))
    assert report.saved[0].path.read_bytes() == BLOB
    assert files_under(tmp_path / "out") == {"v-1.mp4"}


def test_keyboard_interrupt_stops_other_downloads(httpx_mock, tmp_path, monkeypatch):
    # one stream interrupts; the others are held until the cancel flag is up, then offer the rest of
    # their body: none of them may end under a final name
    release = threading.Event()

    class CancelFlag(threading.Event):
        def set(self):
            super().set()
            release.set()

    real_init = transfer._Downloader.__init__

    def init(self, *args, **kwargs):
        real_init(self, *args, **kwargs)
        self.cancel = CancelFlag()

    monkeypatch.setattr(transfer._Downloader, "__init__", init)
    started = threading.Barrier(3, timeout=10)

    class Held(httpx.SyncByteStream):
        def __iter__(self):
            yield BLOB[:10]
            started.wait()
            release.wait(10)
            yield BLOB[10:]

    class Interrupts(httpx.SyncByteStream):
        def __iter__(self):
            yield b"x"
            started.wait()
            raise KeyboardInterrupt

    def answer(request):
        if request.url.path.endswith("/0.mp4"):
            return httpx.Response(200, stream=Interrupts())
        return httpx.Response(200, stream=Held())

    httpx_mock.add_callback(answer, is_reusable=True)
    refs = [ArtifactRef(f"{CDN}/{i}.mp4", index=i, prompt="v") for i in range(3)]
    with pytest.raises(KeyboardInterrupt):
        download_all(refs, opts(tmp_path, concurrency=3))
    assert release.is_set()
    assert files_under(tmp_path / "out") == {f"v-{i}.mp4.part{x}" for i in range(3) for x in ("", ".json")}
    assert (tmp_path / "out" / "v-0.mp4.part").read_bytes() == b"x"


def test_ctrl_c_in_the_waiting_thread_cancels_the_workers(httpx_mock, tmp_path, monkeypatch):
    monkeypatch.setattr(transfer, "WAIT_INTERVAL", 0.001)
    streaming = threading.Event()
    finished = threading.Event()

    class Endless(httpx.SyncByteStream):
        def __iter__(self):
            yield BLOB[:500]
            streaming.set()
            while not finished.is_set():
                yield b"\0"
                finished.wait(0.001)

    httpx_mock.add_response(url=f"{CDN}/a.mp4", stream=Endless())

    class CtrlC(NullProgress):
        def heartbeat(self):
            if streaming.is_set():
                raise KeyboardInterrupt

    try:
        with pytest.raises(KeyboardInterrupt):
            download_all([ArtifactRef(f"{CDN}/a.mp4", prompt="v")], opts(tmp_path), progress=CtrlC())
    finally:
        finished.set()
    assert files_under(tmp_path / "out") == {"v-1.mp4.part", "v-1.mp4.part.json"}
    assert (tmp_path / "out" / "v-1.mp4.part").read_bytes()[:500] == BLOB[:500]


def test_check_on_exists(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "cat-2.png").write_bytes(b"x")
    refs = [ArtifactRef("", index=i, count=2, prompt="cat", content_type="image/png") for i in (1, 2)]
    dl.check_on_exists(refs, opts(tmp_path))  # suffix: nothing to say
    with pytest.raises(UsageError) as info:
        dl.check_on_exists(refs, opts(tmp_path, on_exists="error"))
    assert info.value.message == f"{out / 'cat-2.png'} exists"


# ---------------------------------------------------------------------------------------------------
# real sockets
# ---------------------------------------------------------------------------------------------------

class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: "_Server"

    def log_message(self, *args):  # quiet
        pass

    def do_GET(self):  # noqa: N802
        srv = self.server
        with srv.lock:
            srv.seen.append((self.path, self.headers.get("Range")))
            hits = srv.hits[self.path] = srv.hits.get(self.path, 0) + 1
        body = srv.body
        rng = self.headers.get("Range")
        start = int(rng[6:-1]) if rng else 0
        if self.path == "/short":  # announces everything, sends half, hangs up
            self._head(200, len(body))
            self.wfile.write(body[: len(body) // 2])
            self.close_connection = True
            return
        if self.path == "/long":  # sends more than it announces
            self._head(200, len(body) - 100)
            self.wfile.write(body)
            self.close_connection = True
            return
        if self.path == "/drop-once" and hits == 1:
            self._head(200, len(body))
            self.wfile.write(body[:3000])
            self.wfile.flush()
            self.close_connection = True
            return
        if self.path == "/bad-range.mp4" and rng:
            self.send_response(206)
            self.send_header("Content-Range", f"bytes 0-{len(body) - 1}/{len(body)}")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        if self.path == "/no-length.mp4":
            self.send_response(200)
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(body)
            self.close_connection = True
            return
        if self.path.startswith("/gzip"):  # an encoded body (a bomb for /gzip-bomb.mp4)
            import gzip

            data = gzip.compress(b"\0" * 5_000_000 if "bomb" in self.path else body)
            self.send_response(200)
            self.send_header("Content-Encoding", "gzip")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            return
        if rng:
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
            self.send_header("Content-Length", str(len(body) - start))
            self.end_headers()
            self.wfile.write(body[start:])
            return
        self._head(200, len(body))
        self.wfile.write(body)

    def _head(self, status, length):
        self.send_response(status)
        self.send_header("Content-Type", "video/mp4")
        self.send_header("Content-Length", str(length))
        self.end_headers()


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.lock = threading.Lock()
        self.seen: list[tuple[str, str | None]] = []
        self.hits: dict[str, int] = {}
        self.body = bytes(range(256)) * 200  # 51 200 bytes


@pytest.fixture
def server():
    with serving(_Server()) as srv:
        yield srv


def _url(srv: _Server, path: str) -> str:
    return local_url(srv, path)


def test_real_server_plain_download(server, tmp_path):
    report = download_all([ArtifactRef(_url(server, "/ok.mp4"), prompt="v")], opts(tmp_path))
    assert report.saved[0].path.read_bytes() == server.body


def test_real_server_body_shorter_than_content_length(server, tmp_path):
    report = download_all([ArtifactRef(_url(server, "/short"), prompt="v")], opts(tmp_path, retries=0))
    assert report.saved == []
    assert "connection broken" in report.failed[0][1] or "ended early" in report.failed[0][1]
    assert files_under(tmp_path / "out") == {"v-1.mp4.part", "v-1.mp4.part.json"}
    assert (tmp_path / "out" / "v-1.mp4.part").read_bytes() == server.body[: len(server.body) // 2]


def test_real_server_body_longer_than_content_length_is_cut_to_the_announced_length(server, tmp_path):
    report = download_all([ArtifactRef(_url(server, "/long"), prompt="v")], opts(tmp_path))
    assert report.failed == []
    assert report.saved[0].path.read_bytes() == server.body[:-100]
    assert report.saved[0].bytes == len(server.body) - 100


def test_real_server_drop_mid_body_resumes_with_range(server, tmp_path):
    sleeps = Sleeps()
    report = download_all([ArtifactRef(_url(server, "/drop-once"), prompt="v")], opts(tmp_path), sleep=sleeps)
    assert report.failed == []
    assert report.saved[0].path.read_bytes() == server.body
    assert report.saved[0].sha256 == sha(server.body)
    assert server.seen == [("/drop-once", None), ("/drop-once", "bytes=3000-")]
    assert len(sleeps) == 1


def test_real_server_resume_when_the_name_is_known_only_from_the_answer(server, tmp_path):
    # no extension in the URL: the first answer names the file, a part exists, so it asks again with Range
    _with_part(tmp_path, "v-1.mp4", server.body[:777], _url(server, "/noext"))
    report = download_all([ArtifactRef(_url(server, "/noext"), prompt="v")], opts(tmp_path))
    assert server.seen == [("/noext", None), ("/noext", "bytes=777-")]
    assert report.saved[0].path.read_bytes() == server.body


def test_real_server_resume_from_a_part(server, tmp_path):
    _with_part(tmp_path, "v-1.mp4", server.body[:12345], _url(server, "/ok.mp4"))
    report = download_all([ArtifactRef(_url(server, "/ok.mp4"), prompt="v")], opts(tmp_path))
    assert server.seen == [("/ok.mp4", "bytes=12345-")]
    assert report.saved[0].path.read_bytes() == server.body


def test_real_server_bad_content_range_restarts_from_zero(server, tmp_path):
    _with_part(tmp_path, "v-1.mp4", b"\xff" * 500, _url(server, "/bad-range.mp4"))
    report = download_all([ArtifactRef(_url(server, "/bad-range.mp4"), prompt="v")], opts(tmp_path))
    assert server.seen == [("/bad-range.mp4", "bytes=500-"), ("/bad-range.mp4", None)]
    assert report.saved[0].path.read_bytes() == server.body


def test_real_server_over_the_limit_without_length(server, tmp_path):
    report = download_all([ArtifactRef(_url(server, "/no-length.mp4"), prompt="v")], opts(tmp_path, max_size=10_000))
    assert "size limit" in report.failed[0][1]
    assert files_under(tmp_path / "out") == set()


def test_real_server_encoded_body_is_decoded(server, tmp_path):
    report = download_all([ArtifactRef(_url(server, "/gzip.mp4"), prompt="v")], opts(tmp_path))
    assert report.saved[0].path.read_bytes() == server.body
    assert report.saved[0].sha256 == sha(server.body)


def test_real_server_encoded_body_over_the_limit_is_refused(server, tmp_path):
    report = download_all([ArtifactRef(_url(server, "/gzip-bomb.mp4"), prompt="v")], opts(tmp_path, max_size=1_000_000))
    assert "size limit" in report.failed[0][1]
    assert files_under(tmp_path / "out") == set()


def test_real_server_many_files_concurrently(server, tmp_path):
    refs = [ArtifactRef(_url(server, f"/f{i}.mp4"), index=i, count=20, prompt="m") for i in range(1, 21)]
    report = download_all(refs, opts(tmp_path, concurrency=8))
    assert report.failed == []
    assert all(s.path.read_bytes() == server.body for s in report.saved)
    assert len(server.seen) == 20


# ---------------------------------------------------------------------------------------------------
# progress
# ---------------------------------------------------------------------------------------------------

class FakeClock:
    def __init__(self):
        self.t = 1000.0

    def __call__(self):
        return self.t


def test_plain_progress_rate_limits_lines_and_prints_a_final_line():
    out, clock = io.StringIO(), FakeClock()
    p = make_progress(out, clock=clock)
    assert isinstance(p, PlainProgress)
    p.start("a", 27_000_000, "a.mp4")
    p.advance("a", 1_000_000)
    assert out.getvalue() == ""  # not yet 5 s
    clock.t += 5
    p.advance("a", 11_300_000)
    assert out.getvalue() == "a.mp4: 45% (12.3 MB/27.0 MB)\n"
    clock.t += 1
    p.advance("a", 1_000_000)
    assert out.getvalue().count("\n") == 1
    p.finish("a")
    assert out.getvalue().splitlines()[-1] == "a.mp4: done (13.3 MB)"


def test_plain_progress_heartbeat_only_when_silent_for_30s():
    out, clock = io.StringIO(), FakeClock()
    p = make_progress(out, clock=clock)
    p.heartbeat()
    p.start("a", None, "a.mp4")
    p.heartbeat()
    assert out.getvalue() == ""
    clock.t += 29.9
    p.heartbeat()
    assert out.getvalue() == ""
    clock.t += 0.2
    p.heartbeat()
    assert out.getvalue() == "still working: 1 running, 0 B so far\n"
    p.heartbeat()
    assert out.getvalue().count("\n") == 1
    p.finish("a", ok=False)
    clock.t += 100
    p.heartbeat()  # nothing running
    assert out.getvalue().splitlines()[-1] == "a.mp4: failed (0 B)"


def test_make_progress_choices():
    assert isinstance(make_progress(io.StringIO(), quiet=True), NullProgress)

    class Tty(io.StringIO):
        def isatty(self):
            return True

    tty = Tty()
    p = make_progress(tty, force_plain=True)
    assert isinstance(p, PlainProgress)
    p = make_progress(tty)
    assert isinstance(p, RichProgress)
    p.start("k", 100, "x.png")
    p.advance("k", 100)
    p.note("hello")
    p.finish("k")
    p.close()
    assert "hello" in tty.getvalue() and "x.png" in tty.getvalue()


def test_format_bytes():
    assert [format_bytes(v) for v in (0, 999, 1000, 12_345_678, 2_500_000_000)] == \
        ["0 B", "999 B", "1.0 KB", "12.3 MB", "2.50 GB"]


def test_downloads_report_progress(httpx_mock, tmp_path):
    httpx_mock.add_response(url=f"{CDN}/a.mp4", content=BLOB)
    out = io.StringIO()
    report = download_all([ArtifactRef(f"{CDN}/a.mp4", prompt="v")], opts(tmp_path),
                          progress=make_progress(out, force_plain=True))
    assert report.failed == []
    assert out.getvalue() == "v-1.mp4: done (10.2 KB)\n"


def test_module_imports_stay_light():
    import subprocess
    import sys

    code = ("import sys, sogni_cli.media.downloads, sogni_cli.render.progress;"
            "print(sorted(m for m in ('httpx', 'PIL', 'rich', 'typer') if m in sys.modules))")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert res.stdout.strip() == "[]"
