"""Hostile or broken server behaviour around workflows: stalls, dropped streams, odd artifact lists,
expired links, missing stream routes, transient errors."""

from __future__ import annotations

import json

import httpx
import pytest

from tests.test_media_commands import CDN, WF, FakeAPI, frame, happy_events, png_bytes


class FakeClock:
    def __init__(self):
        self.now = 1000.0
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def sleep(self, s: float) -> None:
        self.sleeps.append(s)
        self.now += s


@pytest.fixture
def clock(monkeypatch):
    import sogni_cli.api.workflows as wf

    c = FakeClock()
    monkeypatch.setattr(wf, "monotonic", c.monotonic)
    monkeypatch.setattr(wf, "sleep", c.sleep)
    return c


@pytest.fixture
def api(httpx_mock, env_key, tmp_cwd):
    return FakeAPI(httpx_mock)


def test_workflow_that_never_finishes_times_out_exit_6(cli, api, httpx_mock, clock):
    api.streams = [[frame(1, "workflow_started", "running", status="running")]]  # then the stream ends
    api.records = [dict(api.record("running"), progress=0.1)]  # forever running, never changing
    res = cli("image", "x", "--timeout", "30")
    assert res.exit_code == 6, res.stderr
    assert "no progress for 30 s" in res.stderr
    assert "sogni workflow download wf_t1" in res.stderr  # the id is in the hint
    assert 30 <= clock.now - 1000.0 <= 40  # gave up soon after the limit, not before
    assert api.media_hits == []


def test_stream_dropped_mid_event_resumes_with_last_event_id_without_duplicates(cli, api, httpx_mock):
    events = happy_events()
    cut = events[2][: len(events[2]) // 2]  # half of event 3, then the connection breaks
    api.streams = [(events[:2] + [cut], httpx.ReadError("connection reset")),
                   events[1:]]  # the server repeats event 2 after the resume point: must be ignored
    api.records = [api.record("running"), api.record("completed")]  # still running when the stream broke
    seen_headers = []
    api.on_stream = lambda req: seen_headers.append(req.headers.get("last-event-id"))
    res = cli("image", "x", "--jsonl")
    assert res.exit_code == 0, res.stderr
    assert seen_headers == [None, "wf_t1:2"]
    seqs = [json.loads(l).get("sequence") for l in res.stdout.splitlines() if '"workflow"' in l]
    seqs = [s for s in seqs if s is not None]
    assert seqs == [1, 2, 3, 4, 5]
    assert res.stdout.splitlines()[-1] == '{"event":"done","finish_reason":"completed"}'


def test_stream_that_ends_without_terminal_event_checks_the_record(cli, api, httpx_mock):
    api.streams = [happy_events()[:3]]  # ends cleanly before the terminal event
    res = cli("image", "x")
    assert res.exit_code == 0, res.stderr
    assert res.stdout.splitlines() == ["x-1.png"]


def test_no_stream_route_falls_back_to_polling(cli, api, httpx_mock, clock):
    api.streams = [httpx.Response(404, json={"status": "error", "message": "no", "errorCode": 404})]
    api.records = [api.record("queued"), dict(api.record("running"), progress=0.5), api.record("completed")]
    res = cli("image", "x")
    assert res.exit_code == 0, res.stderr
    assert res.stdout.splitlines() == ["x-1.png"]
    gets = api.requests(httpx_mock, "GET", f"{WF}/wf_t1")
    assert len(gets) >= 3
    assert clock.sleeps and all(s <= 5.0 for s in clock.sleeps)


def test_step_status_does_not_end_the_workflow_and_partial_failure_on_completed_event(cli, httpx_mock, env_key,
                                                                                        tmp_cwd):
    api = FakeAPI(httpx_mock, final="partial_failure", n_artifacts=1)
    res = cli("image", "x", "-n", "2", "--jsonl")
    assert res.exit_code == 8
    lines = [json.loads(l) for l in res.stdout.splitlines()]
    statuses = [l.get("status") for l in lines if l["event"] == "workflow"]
    assert statuses[-1] == "partial_failure"  # read from the status, on a workflow_completed event
    assert "completed" not in statuses  # the step_completed event did not count as the workflow's status
    assert api.media_hits  # what exists was downloaded


def test_fifty_artifacts_at_once(cli, httpx_mock, env_key, tmp_cwd):
    api = FakeAPI(httpx_mock, n_artifacts=50)
    res = cli("image", "x", "-n", "16", "-o", "many")
    assert res.exit_code == 0, res.stderr
    paths = res.stdout.splitlines()
    assert paths == [f"many/x-{i}.png" for i in range(1, 51)]
    for i, p in enumerate(paths):
        assert (tmp_cwd / p).read_bytes() == api.media[f"/runs/wf_t1/a{i + 1}.png"]


def test_expired_url_gets_one_fresh_record(cli, api, httpx_mock, tmp_cwd):
    fresh = f"{CDN}/runs/wf_t1/fresh.png?sig=2"
    api.media["/runs/wf_t1/fresh.png"] = png_bytes(3, 3)
    expired = api.artifacts[0]["url"]
    api.media["/runs/wf_t1/a1.png"] = lambda req: httpx.Response(403, text="Request has expired")
    stale = api.record("completed")
    renewed = dict(api.record("completed"), artifacts=[dict(api.artifacts[0], url=fresh)])
    api.records = [stale, renewed]  # the pipeline's read after the end, then the one refresh
    res = cli("image", "x")
    assert res.exit_code == 0, res.stderr
    assert len(api.requests(httpx_mock, "GET", f"{WF}/wf_t1")) == 2
    assert (tmp_cwd / "x-1.png").read_bytes() == png_bytes(3, 3)
    assert api.media_hits == ["/runs/wf_t1/a1.png", "/runs/wf_t1/fresh.png"]
    assert expired != fresh


def test_expired_url_that_stays_expired_is_exit_8(cli, api, httpx_mock, tmp_cwd):
    api.media["/runs/wf_t1/a1.png"] = lambda req: httpx.Response(403)
    res = cli("image", "x")
    assert res.exit_code == 8
    assert "sogni workflow download wf_t1" in res.stderr
    assert not list(tmp_cwd.glob("*.png"))


def test_artifact_without_url_counts_as_failed(cli, api, httpx_mock, tmp_cwd):
    api.artifacts = [api.artifacts[0], {"id": "art_2", "kind": "image", "urlUnavailable": "sensitiveContent"}]
    res = cli("image", "x", "-n", "2")
    assert res.exit_code == 8
    assert res.stdout.splitlines() == ["x-1.png"]
    assert "sensitiveContent" in res.stderr


def test_create_retried_on_503_with_one_idempotency_key(cli, api, httpx_mock, sleeps):
    calls = {"n": 0}

    def flaky(request):
        if request.method == "POST" and request.url.path == WF and calls["n"] == 0:
            calls["n"] += 1
            return httpx.Response(503, json={"status": "error", "message": "restarting", "errorCode": 503,
                                             "retryAfter": 0.05})
        return None

    api.intercept = flaky
    res = cli("image", "x")
    assert res.exit_code == 0, res.stderr
    posts = [r for r in httpx_mock.get_requests() if r.method == "POST" and r.url.path == WF]
    assert len(posts) == 2 and posts[0].headers["Idempotency-Key"] == posts[1].headers["Idempotency-Key"]
    assert sleeps == [0.05]


def test_hostile_workflow_id_is_quoted_in_paths(cli, httpx_mock, env_key, tmp_cwd):
    FakeAPI(httpx_mock, wid="../../v1/admin")
    res = cli("image", "x", "--detach")
    assert res.exit_code == 0
    res = cli("workflow", "show", "../../v1/admin")
    paths = [r.url.raw_path.decode() for r in httpx_mock.get_requests() if r.method == "GET"]
    assert paths and all(p.startswith("/v1/creative-agent/workflows/..%2F..%2Fv1%2Fadmin") for p in paths)
