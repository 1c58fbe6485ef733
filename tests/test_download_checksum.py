"""sha256 is computed when something will report it, and skipped otherwise."""

from __future__ import annotations

import hashlib
import json

from sogni_cli.media.downloads import ArtifactRef, DownloadOptions, download_all

URL = "https://cdn.sogni.test/a.bin"
BODY = b"\x00\x01sound" * 1000


def test_checksum_off_reports_none(httpx_mock, tmp_path):
    httpx_mock.add_response(url=URL, content=BODY, headers={"content-type": "audio/wav"})
    report = download_all([ArtifactRef(URL, prompt="x")], DownloadOptions(output_dir=tmp_path, checksum=False))
    assert report.saved[0].sha256 is None
    assert report.saved[0].path.read_bytes() == BODY


def test_manifest_forces_checksum(httpx_mock, tmp_path):
    httpx_mock.add_response(url=URL, content=BODY, headers={"content-type": "audio/wav"})
    manifest = tmp_path / "m.jsonl"
    report = download_all([ArtifactRef(URL, prompt="x")],
                          DownloadOptions(output_dir=tmp_path / "o", checksum=False, manifest=manifest))
    digest = hashlib.sha256(BODY).hexdigest()
    assert report.saved[0].sha256 == digest
    assert json.loads(manifest.read_text().splitlines()[0])["sha256"] == digest


def test_cli_json_reports_sha256_plain_run_does_not_need_it(cli, env_key, httpx_mock, tmp_path):
    """`sogni image --json` prints real digests (the pipeline turns checksums on for it)."""
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buf, "PNG")
    png = buf.getvalue()
    base = "https://api.sogni.test/v1/creative-agent/workflows"
    rec = {"workflowId": "wf_9", "status": "completed",
           "artifacts": [{"id": "a", "url": "https://cdn.sogni.test/i.png", "mimeType": "image/png"}]}
    httpx_mock.add_response(url=base, method="POST", status_code=201, json={"status": "success", "data": {"workflow": rec}})
    httpx_mock.add_response(url=f"{base}/wf_9", json={"status": "success", "data": {"workflow": rec}}, is_reusable=True)
    httpx_mock.add_response(url="https://cdn.sogni.test/i.png", content=png, headers={"content-type": "image/png"})
    httpx_mock.add_response(url=f"{base}/wf_9/events/stream", status_code=404, json={}, is_optional=True)
    res = cli("image", "x", "-o", str(tmp_path / "o"), "--json")
    assert res.exit_code == 0, res.stderr
    doc = json.loads(res.stdout)
    assert doc["artifacts"][0]["sha256"] == hashlib.sha256(png).hexdigest()
