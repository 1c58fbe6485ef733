"""TLS costs paid only where TLS is used: no CA bundle loaded for an ``http://`` base URL, one per process for
``https://`` (the API client and the media downloader share it), and certificates still checked.

Each process runs with a ``sitecustomize`` that counts calls of ``ssl.SSLContext``'s CA-loading methods and
writes the count at exit.
"""

from __future__ import annotations

import json
import os
import shutil
import ssl
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from .conftest import run_sogni

COUNTER = """\
import atexit, os, ssl
_n = [0]
def _wrap(name):
    orig = getattr(ssl.SSLContext, name)
    def counted(self, *a, **k):
        _n[0] += 1
        return orig(self, *a, **k)
    setattr(ssl.SSLContext, name, counted)
for _name in ("load_verify_locations", "load_default_certs", "set_default_verify_paths"):
    _wrap(_name)
atexit.register(lambda: open(os.environ["CA_LOADS_FILE"], "w").write(str(_n[0])))
"""


def counting_env(env: dict[str, str], tmp_path: Path) -> tuple[dict[str, str], Path]:
    site = tmp_path / "ca-count"
    site.mkdir(exist_ok=True)
    (site / "sitecustomize.py").write_text(COUNTER)
    count = tmp_path / "ca-loads.txt"
    path = os.pathsep.join([str(site)] + [p for p in [env.get("PYTHONPATH")] if p])
    return dict(env, PYTHONPATH=path, CA_LOADS_FILE=str(count)), count


def test_http_base_url_loads_no_ca_bundle_for_chat_or_media(sogni_env, tmp_path):
    env, count = counting_env(sogni_env, tmp_path)
    res = run_sogni(["chat", "hello"], env)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip()
    assert count.read_text() == "0"
    res = run_sogni(["image", "a heron", "-o", tmp_path / "out"], env)
    assert res.returncode == 0, res.stderr
    assert len(list((tmp_path / "out").glob("*.png"))) == 1
    assert count.read_text() == "0"


# ----------------------------------------------------------------------------------------------- https

PNG = bytes.fromhex("89504e470d0a1a0a0000000d4948445200000001000000010806000000"
                    "1f15c4890000000d49444154789c6360f8cfc0f01f0005000201a5f1e1e90000000049454e44ae426082")


@pytest.fixture
def tls_server(tmp_path):
    """A loopback HTTPS server with a self-signed certificate for 127.0.0.1: GET /v1/models, GET /media.png."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl is needed to make a test certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run([openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                    "-keyout", str(key), "-out", str(cert), "-days", "1", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1"], check=True, capture_output=True)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def do_GET(self):
            if self.path.startswith("/v1/models"):
                body, kind = json.dumps({"object": "list", "data": []}).encode(), "application/json"
            elif self.path == "/media.png":
                body, kind = PNG, "image/png"
            else:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    httpd.socket = ctx.wrap_socket(httpd.socket, server_side=True)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        yield f"https://127.0.0.1:{httpd.server_address[1]}", cert
    finally:
        httpd.shutdown()
        httpd.server_close()


BOTH_CLIENTS = """\
import sys
from pathlib import Path
from sogni_cli.api.client import ApiClient, ClientConfig
from sogni_cli.media.downloads import DownloadOptions, make_download_client
base = sys.argv[1]
api = ApiClient(ClientConfig(base_url=base, api_key="sk-test-tls-0000", max_retries=0))
print(type(api.request("GET", "/v1/models")).__name__)
with make_download_client(DownloadOptions(output_dir=Path(sys.argv[2]))) as media:
    resp = media.get(base + "/media.png")
    print(resp.status_code, len(resp.content))
api.close()
"""


def test_https_api_and_media_clients_share_one_ca_load_and_still_check_certificates(sogni_env, tmp_path, tls_server):
    base, cert = tls_server
    env, count = counting_env(sogni_env, tmp_path)
    script = tmp_path / "both.py"
    script.write_text(BOTH_CLIENTS)
    trusted = dict(env, SSL_CERT_FILE=str(cert))  # the bundle httpx itself would use when this is set
    res = subprocess.run([sys.executable, str(script), base, str(tmp_path / "media")], env=trusted, capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    assert res.stdout.split() == ["dict", "200", str(len(PNG))]
    assert count.read_text() == "1"  # two clients, two TLS connections, one CA bundle

    # Without the test certificate in the bundle, the same requests are refused: verification is intact.
    res = run_sogni(["--base-url", base, "--max-retries", "0", "models"], env)
    assert res.returncode != 0
    assert "certificate" in res.stderr.lower() or "ssl" in res.stderr.lower(), res.stderr
    assert count.read_text() == "1"
