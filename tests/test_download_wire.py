"""Downloads over a real local HTTP server: large bodies read straight off the socket (with and without a
checksum, cut short and resumed), kept-alive connections, and checksums only when something reports them."""

from __future__ import annotations

import hashlib
import http.server
import json
import threading
from pathlib import Path

import pytest

from tests.conftest import local_url, serving
from sogni_cli.media import transfer
from sogni_cli.media.downloads import ArtifactRef, DownloadOptions, download_all

BIG = (bytes(range(256)) * 4096) * 12 + b"tail"  # 12 MiB and 4 bytes: over the straight-off-the-socket size


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_GET(self):  # noqa: N802
        srv = self.server
        with srv.lock:
            srv.requests.append((self.path, self.headers.get("Range"), self.client_address[1]))
            hits = srv.hits[self.path] = srv.hits.get(self.path, 0) + 1
        if self.path.startswith("/hop/"):  # a relative redirect to the file after the last slash
            self.send_response(302)
            self.send_header("Location", "../small/" + self.path.rsplit("/", 1)[1])
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if self.path.startswith("/away/"):  # a redirect to a host that plain http may not reach
            self.send_response(307)
            self.send_header("Location", "http://media.example.com/x.mp4")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if self.path.startswith("/chunked/"):  # an interim answer, then a body in chunks, then a trailer
            self.wfile.write(b"HTTP/1.1 103 Early Hints\r\nLink: </x>\r\n\r\n")
            self.send_response(200)
            self.send_header("Content-Type", "video/mp4")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for piece in (b"a" * 1000, b"b" * 70000, b"c"):
                self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
            self.wfile.write(b"0\r\nX-Trailer: 1\r\n\r\n")
            return
        body = BIG if self.path.startswith("/big") else b"x" * 2000
        if self.path.startswith("/big-changed"):  # a new version: a whole 200 whatever is asked, cut the first time
            self.send_response(200)
            self.send_header("Content-Type", "video/mp4")
            self.send_header("ETag", '"v2"')
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body[: len(body) // 2] if hits == 1 else body)
            self.wfile.flush()
            self.close_connection = hits == 1
            return
        rng = self.headers.get("Range")
        start = int(rng[6:-1]) if rng else 0
        if rng:
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        else:
            self.send_response(200)
        self.send_header("Content-Type", "video/mp4")
        self.send_header("ETag", '"v1"')
        self.send_header("Content-Length", str(len(body) - start))
        self.end_headers()
        if self.path.startswith("/big-cut") and hits == 1:  # half the body, then the connection goes
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(body[start:])


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.lock = threading.Lock()
        self.requests: list[tuple[str, str | None, int]] = []
        self.hits: dict[str, int] = {}


@pytest.fixture
def server():
    with serving(_Server()) as srv:
        yield srv


def _url(srv: _Server, path: str) -> str:
    return local_url(srv, path)


def _opts(tmp_path: Path, **kw) -> DownloadOptions:
    kw.setdefault("retries", 1)
    return DownloadOptions(output_dir=tmp_path / "out", **kw)


class _NoSleep:
    def __call__(self, seconds: float) -> None:
        pass


@pytest.mark.parametrize("checksum", [False, True])
def test_a_large_body_arrives_whole(server, tmp_path, checksum):
    report = download_all([ArtifactRef(_url(server, "/big.mp4"), prompt="v")], _opts(tmp_path, checksum=checksum))
    assert report.ok, report.failed
    [saved] = report.saved
    assert saved.path.read_bytes() == BIG and saved.bytes == len(BIG)
    assert saved.sha256 == (hashlib.sha256(BIG).hexdigest() if checksum else None)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [".sogni-downloads.json", "v-1.mp4"]


@pytest.mark.parametrize("checksum", [False, True])
def test_a_large_body_cut_short_resumes_where_it_stopped(server, tmp_path, checksum):
    report = download_all([ArtifactRef(_url(server, "/big-cut.mp4"), prompt="v")],
                          _opts(tmp_path, checksum=checksum), sleep=_NoSleep())
    assert report.ok, report.failed
    [saved] = report.saved
    assert saved.path.read_bytes() == BIG
    assert saved.sha256 == (hashlib.sha256(BIG).hexdigest() if checksum else None)
    ranges = [r for p, r, _ in server.requests if p == "/big-cut.mp4"]
    assert ranges == [None, f"bytes={len(BIG) // 2}-"]  # the second request asked for the rest only


def test_small_files_share_kept_alive_connections(server, tmp_path):
    refs = [ArtifactRef(_url(server, f"/small/{i}.mp4"), prompt="s", index=i, count=30) for i in range(1, 31)]
    report = download_all(refs, _opts(tmp_path, concurrency=2, checksum=False))
    assert report.ok, report.failed and len(report.saved) == 30
    assert all(s.path.read_bytes() == b"x" * 2000 for s in report.saved)
    ports = {port for _, _, port in server.requests}
    assert len(ports) <= 2  # one connection per worker, reused for every file


def test_no_sidecar_is_left_for_small_files(server, tmp_path):
    report = download_all([ArtifactRef(_url(server, "/small/1.mp4"), prompt="s")], _opts(tmp_path))
    assert report.ok
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [".sogni-downloads.json", "s-1.mp4"]


def test_the_socket_path_is_used_for_large_plain_bodies(server, tmp_path, monkeypatch):
    seen: list[int] = []
    real = transfer._from_socket

    def spy(sock, fd, remaining, *a, **k):
        seen.append(remaining)
        return real(sock, fd, remaining, *a, **k)

    monkeypatch.setattr(transfer, "_from_socket", spy)
    report = download_all([ArtifactRef(_url(server, "/big.mp4"), prompt="v")], _opts(tmp_path))
    assert report.ok and seen and 0 < seen[0] <= len(BIG)


def test_workflow_download_hashes_only_when_something_reports_it(emulator_workflow, tmp_path):
    cli, wid = emulator_workflow
    res = cli("workflow", "download", wid, "-o", str(tmp_path / "a"))
    assert res.exit_code == 0, res.stderr
    record = json.loads((tmp_path / "a" / ".sogni-downloads.json").read_text())
    assert [e["sha256"] for e in record["files"].values()] == [None]
    res = cli("workflow", "download", wid, "-o", str(tmp_path / "b"), "--json")
    assert res.exit_code == 0, res.stderr
    [art] = json.loads(res.stdout)["artifacts"]
    assert len(art["sha256"]) == 64
    record = json.loads((tmp_path / "b" / ".sogni-downloads.json").read_text())
    assert [e["sha256"] for e in record["files"].values()] == [art["sha256"]]


def test_concurrency_must_be_positive(emulator_workflow, tmp_path):
    cli, wid = emulator_workflow
    res = cli("workflow", "download", wid, "-o", str(tmp_path), "--concurrency", "0")
    assert res.exit_code == 2 and "--concurrency must be at least 1" in res.stderr


@pytest.fixture
def emulator_workflow(tmp_path, monkeypatch, cli):
    """(the in-process CLI against a local emulator, the id of a finished one-image workflow)."""
    from sogni_cli import emulator as emu_mod

    emu = emu_mod.start(step_seconds=0.01)
    monkeypatch.setenv("SOGNI_BASE_URL", emu.base_url)
    monkeypatch.setenv("SOGNI_API_KEY", "sk-test-wire")
    monkeypatch.setenv("SOGNI_CONFIG_DIR", str(tmp_path / "cfg"))
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    try:
        res = cli("image", "a heron", "--width", "64", "--height", "64", "-o", str(tmp_path / "first"), "--json")
        assert res.exit_code == 0, res.stderr
        yield cli, json.loads(res.stdout)["workflow_id"]
    finally:
        emu.stop()


def test_redirects_are_followed_and_checked_hop_by_hop(server, tmp_path):
    refs = [ArtifactRef(_url(server, "/hop/1.mp4"), prompt="r", index=1, count=2),
            ArtifactRef(_url(server, "/away/2.mp4"), prompt="r", index=2, count=2)]
    report = download_all(refs, _opts(tmp_path, checksum=False))
    assert [s.path.name for s in report.saved] == ["r-1.mp4"]
    assert report.saved[0].path.read_bytes() == b"x" * 2000
    [(ref, why)] = report.failed
    assert ref.index == 2 and why.startswith("refused redirect target http://media.example.com/x.mp4: plain http")
    assert sorted(p for p, _, _ in server.requests) == ["/away/2.mp4", "/hop/1.mp4", "/small/1.mp4"]


def test_a_chunked_body_after_an_interim_answer_arrives_whole_and_the_connection_is_reused(server, tmp_path):
    refs = [ArtifactRef(_url(server, f"/chunked/{i}.mp4"), prompt="c", index=i, count=3) for i in (1, 2, 3)]
    report = download_all(refs, _opts(tmp_path, concurrency=1))
    assert report.ok, report.failed
    body = b"a" * 1000 + b"b" * 70000 + b"c"
    assert [s.path.read_bytes() == body for s in report.saved] == [True, True, True]
    assert report.saved[0].sha256 == hashlib.sha256(body).hexdigest()
    assert len({port for _, _, port in server.requests}) == 1


def test_a_part_rewritten_from_zero_keeps_its_new_sidecar_when_it_stops_short(server, tmp_path):
    # A part of an older version is asked for with If-Range, the server sends the new version whole (200)
    # and stops half way: the part's sidecar now names the new version, so the next try resumes it.
    from sogni_cli.media import downloads as dl

    url = _url(server, "/big-changed.mp4")
    out = tmp_path / "out"
    out.mkdir()
    part = out / "v-1.mp4.part"
    part.write_bytes(b"old" * 1000)
    dl.write_sidecar(part, dict(dl.identity(ArtifactRef(url), url), etag='"v1"'))
    report = download_all([ArtifactRef(url, prompt="v")], _opts(tmp_path, checksum=True), sleep=_NoSleep())
    assert report.ok, report.failed
    assert report.saved[0].path.read_bytes() == BIG
    assert report.saved[0].sha256 == hashlib.sha256(BIG).hexdigest()
    ranges = [r for p, r, _ in server.requests if p == "/big-changed.mp4"]
    assert ranges == ["bytes=3000-", f"bytes={len(BIG) // 2}-"]
