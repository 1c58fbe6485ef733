"""Settings precedence, credentials, `auth`, `config`, `models`, and the exit-code funnel."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys

import pytest

from .conftest import BASE_URL, CANARY_KEY, chunk, sse_body


def test_version_and_help(cli):
    import sogni_cli

    res = cli("--version")
    assert res.exit_code == 0 and res.stdout == f"sogni {sogni_cli.__version__}\n"
    res = cli("--help")
    assert res.exit_code == 0 and "Examples:" in res.stdout and "chat" in res.stdout
    from sogni_cli.app import COMMANDS

    for cmd in COMMANDS:
        res = cli(cmd, "--help")
        assert res.exit_code == 0 and "Examples:" in res.stdout, cmd
    for group, subs in {"tools": ["list", "show", "run"], "workflow": ["list", "show", "events", "watch", "cancel",
                                                                        "download"],
                        "recipe": ["validate", "plan", "run", "report"], "auth": ["login", "status", "logout"],
                        "config": ["path", "list", "get", "set", "unset"]}.items():
        for sub in subs:
            res = cli(group, sub, "--help")
            assert res.exit_code == 0 and "Examples:" in res.stdout, (group, sub)


def test_no_args_shows_help(cli):
    res = cli()
    assert res.exit_code == 0 and "Commands:" in res.stdout


def test_unknown_command_suggests(cli):
    res = cli("chta")
    assert res.exit_code == 2 and "Did you mean 'chat'?" in res.stderr
    assert res.stderr.startswith("Error: ")


def test_login_from_stdin_creates_0600_file(cli, tmp_path):
    res = cli("auth", "login", input=CANARY_KEY + "\n")
    assert res.exit_code == 0, res.stderr
    path = tmp_path / "config" / "credentials"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert CANARY_KEY in path.read_text()
    res = cli("auth", "status")
    assert res.exit_code == 0
    assert "sk-…9c1e55d04b2b"[-4:] in res.stdout and CANARY_KEY not in res.stdout
    assert "credentials file" in res.stdout
    res = cli("auth", "logout")
    assert res.exit_code == 0 and not path.exists()
    assert cli("auth", "status").exit_code == 3


def test_login_never_takes_the_key_from_argv(cli):
    res = cli("auth", "login", CANARY_KEY)
    assert res.exit_code == 2


def test_login_with_empty_stdin_fails(cli):
    res = cli("auth", "login", input="")
    assert res.exit_code == 2 and "standard input" in res.stderr


def test_existing_wide_credentials_file_is_tightened(cli, tmp_path, monkeypatch):
    d = tmp_path / "config"
    d.mkdir()
    p = d / "credentials"
    p.write_text(f"[default]\napi_key = {CANARY_KEY}\n")
    os.chmod(p, 0o644)
    res = cli("auth", "status")
    assert res.exit_code == 0
    assert stat.S_IMODE(p.stat().st_mode) == 0o600


def test_precedence_flag_env_profile_default(cli, tmp_path, monkeypatch, httpx_mock):
    assert cli("config", "set", "base_url", "https://profile.test").exit_code == 0
    assert cli("auth", "login", input="sk-profile-key-000000").exit_code == 0
    res = cli("auth", "status")
    assert "https://profile.test" in res.stdout and "credentials file" in res.stdout
    monkeypatch.setenv("SOGNI_BASE_URL", "https://env.test")
    monkeypatch.setenv("SOGNI_API_KEY", CANARY_KEY)
    res = cli("auth", "status")
    assert "https://env.test" in res.stdout and "SOGNI_API_KEY" in res.stdout
    res = cli("--base-url", "https://flag.test", "auth", "status")
    assert "https://flag.test" in res.stdout
    res = cli("config", "list")
    assert "base_url" in res.stdout and "env SOGNI_BASE_URL" in res.stdout


def test_api_base_url_alias(cli, monkeypatch):
    monkeypatch.setenv("SOGNI_API_BASE_URL", "https://alias.test")
    monkeypatch.setenv("SOGNI_API_KEY", CANARY_KEY)
    assert "https://alias.test" in cli("auth", "status").stdout


def test_profiles_are_separate(cli, monkeypatch):
    assert cli("--profile", "staging", "config", "set", "base_url", "https://staging.test").exit_code == 0
    assert cli("config", "get", "base_url").exit_code == 2
    res = cli("--profile", "staging", "config", "get", "base_url")
    assert res.stdout == "https://staging.test\n"
    monkeypatch.setenv("SOGNI_PROFILE", "staging")
    assert cli("config", "get", "base_url").stdout == "https://staging.test\n"


def test_unknown_profile_and_setting(cli):
    assert cli("--profile", "nope", "config", "list").exit_code == 2
    res = cli("config", "set", "modle", "x")
    assert res.exit_code == 2 and "model" in res.stderr
    assert cli("config", "set", "base_url", "not-a-url").exit_code == 2
    assert cli("config", "set", "timeout", "abc").exit_code == 2


def test_config_path(cli, tmp_path):
    assert cli("config", "path").stdout.strip() == str(tmp_path / "config")


def test_invalid_config_yaml_reports_position(cli, tmp_path):
    d = tmp_path / "config"
    d.mkdir()
    (d / "config.yaml").write_text("profiles:\n  default: [unclosed\n")
    res = cli("config", "list")
    assert res.exit_code == 2 and "config.yaml:" in res.stderr


def test_bad_global_values(cli, monkeypatch):
    monkeypatch.setenv("SOGNI_API_KEY", CANARY_KEY)
    assert cli("--timeout", "-1", "models").exit_code == 2
    monkeypatch.setenv("SOGNI_MAX_RETRIES", "many")
    assert cli("models").exit_code == 2
    monkeypatch.delenv("SOGNI_MAX_RETRIES")
    monkeypatch.setenv("SOGNI_TOKEN_TYPE", "gold")
    assert cli("models").exit_code == 2


MODELS = {"object": "list", "data": [{"id": "qwen-a", "object": "model", "owned_by": "sogni"},
                                     {"id": "qwen-b", "object": "model", "owned_by": "sogni"}]}


def test_models_piped_json_and_cache(cli, env_key, httpx_mock, tmp_path):
    httpx_mock.add_response(url=f"{BASE_URL}/v1/models", json=MODELS, is_reusable=True)
    res = cli("models")
    assert res.exit_code == 0 and res.stdout == "qwen-a\nqwen-b\n"
    assert (tmp_path / "config" / "models-cache.txt").read_text() == "qwen-a\nqwen-b\n"
    res = cli("models", "--json")
    assert json.loads(res.stdout) == MODELS
    res = cli("models", stdout_tty=True)
    assert "qwen-a" in res.stdout and "Owner" in res.stdout
    req = httpx_mock.get_requests()[0]
    assert req.headers["authorization"] == f"Bearer {CANARY_KEY}" and "idempotency-key" not in req.headers


def test_models_no_key_is_3(cli, monkeypatch, httpx_mock):
    res = cli("models")
    assert res.exit_code == 3 and "SOGNI_API_KEY" in res.stderr


def test_key_only_sent_to_api_origin(cli, env_key, httpx_mock):
    """The API client adds auth only for the base URL's origin (scheme, host and port)."""
    from sogni_cli.api.client import ApiClient, ClientConfig

    c = ApiClient(ClientConfig(base_url="https://api.sogni.test", api_key=CANARY_KEY))
    assert "Authorization" in c.headers_for("https://api.sogni.test/v1/x")
    for other in ("http://api.sogni.test/v1/x", "https://api.sogni.test:8443/v1/x", "https://cdn.sogni.test/a.png",
                  "https://api.sogni.test.evil.test/x"):
        h = c.headers_for(other)
        assert "Authorization" not in h and "api-key" not in h, other


def test_retry_after_http_date():
    import email.utils
    import time

    from sogni_cli.api.client import parse_retry_after

    now = time.time()
    date = email.utils.formatdate(now + 30, usegmt=True)
    wait = parse_retry_after({"retry-after": date}, None, now=now)
    assert 28 <= wait <= 31


def _run(args, env, **kw):
    return subprocess.run([sys.executable, "-m", "sogni_cli", *args], env=env, capture_output=True, text=True,
                          timeout=60, **kw)


def _env(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("SOGNI_")}
    env["SOGNI_CONFIG_DIR"] = str(tmp_path / "cfg")
    return env


def test_subprocess_no_traceback_on_errors(tmp_path):
    res = _run(["chat", "x"], _env(tmp_path))
    assert res.returncode == 3
    assert "Traceback" not in res.stderr and res.stderr.startswith("Error: ")


def test_closed_stdout_exits_quietly(tmp_path):
    """A reader that goes away early: no traceback, exit 0 or 141."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class H(BaseHTTPRequestHandler):
        def do_POST(self):
            self.rfile.read(int(self.headers["Content-Length"]))
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.end_headers()
            try:
                for i in range(20000):
                    self.wfile.write(sse_body([chunk(f"line {i}\n")], done=False))
                self.wfile.write(b"data: [DONE]\n\n")
            except OSError:
                pass

        def log_message(self, *a):
            pass

    srv = ThreadingHTTPServer(("127.0.0.1", 0), H)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    env = _env(tmp_path)
    env["SOGNI_API_KEY"] = CANARY_KEY
    env["SOGNI_BASE_URL"] = f"http://127.0.0.1:{srv.server_address[1]}"
    proc = subprocess.Popen([sys.executable, "-m", "sogni_cli", "chat", "go"], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    first = proc.stdout.readline()
    proc.stdout.close()
    err = proc.stderr.read().decode()
    code = proc.wait(timeout=60)
    srv.shutdown()
    assert first.startswith(b"line 0")
    assert code in (0, 141), err
    assert "Traceback" not in err and "Error" not in err
    assert CANARY_KEY not in err


def _finish_or_show_stacks(proc: subprocess.Popen) -> tuple[str, str]:
    """The output of a process that should end soon; if it hangs, its threads' stacks (the child runs with
    PYTHONFAULTHANDLER, so SIGABRT prints them) go into the failure message."""
    import signal

    try:
        return proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGABRT)
        out, err = proc.communicate(timeout=30)
        pytest.fail(f"the process did not end; its stacks:\n{err}")


def test_ctrl_c_exits_130_without_traceback(tmp_path):
    """SIGINT while waiting on a silent server."""
    import signal
    import socket
    import threading

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(5)
    accepted = threading.Event()
    conns = []

    def accept():
        c, _ = listener.accept()
        conns.append(c)
        accepted.set()

    threading.Thread(target=accept, daemon=True).start()
    env = _env(tmp_path)
    env["SOGNI_API_KEY"] = CANARY_KEY
    env["SOGNI_BASE_URL"] = f"http://127.0.0.1:{listener.getsockname()[1]}"
    env["PYTHONFAULTHANDLER"] = "1"
    proc = subprocess.Popen([sys.executable, "-m", "sogni_cli", "chat", "hello"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert accepted.wait(30)
    proc.send_signal(signal.SIGINT)
    out, err = _finish_or_show_stacks(proc)
    listener.close()
    assert proc.returncode == 130
    assert "Traceback" not in err and out == ""


@pytest.mark.parametrize("sig,code", [("SIGTERM", 143)])
def test_sigterm_exits_143(tmp_path, sig, code):
    import signal
    import socket
    import threading

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(5)
    accepted = threading.Event()
    held = []  # the accepted connection stays open (a silent server), so the client is still waiting

    def accept() -> None:
        held.append(listener.accept())
        accepted.set()

    threading.Thread(target=accept, daemon=True).start()
    env = _env(tmp_path)
    env["SOGNI_API_KEY"] = CANARY_KEY
    env["SOGNI_BASE_URL"] = f"http://127.0.0.1:{listener.getsockname()[1]}"
    env["PYTHONFAULTHANDLER"] = "1"
    proc = subprocess.Popen([sys.executable, "-m", "sogni_cli", "chat", "hello"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert accepted.wait(30)
    proc.send_signal(getattr(signal, sig))
    _, err = _finish_or_show_stacks(proc)
    listener.close()
    for conn, _addr in held:
        conn.close()
    assert proc.returncode == code and "Traceback" not in err, err


def test_no_color_flag_turns_colour_off(cli, env_key, httpx_mock, monkeypatch):
    httpx_mock.add_response(url=f"{BASE_URL}/v1/models", json=MODELS, is_reusable=True)
    monkeypatch.setenv("FORCE_COLOR", "1")
    monkeypatch.setenv("TERM", "xterm-256color")
    coloured = cli("models", stdout_tty=True)
    assert "\x1b[" in coloured.stdout
    plain = cli("--no-color", "models", stdout_tty=True)
    assert plain.exit_code == 0 and "qwen-a" in plain.stdout
    assert "\x1b[" not in plain.stdout
