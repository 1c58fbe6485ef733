"""The one sender (sogni_cli.api.client + sogni_cli.api.retry): exact requests, keys and waits per route."""

from __future__ import annotations

import json

import httpx
import pytest

from sogni_cli.api.client import ApiClient, ClientConfig, RetryPolicy
from sogni_cli.api.retry import ConcurrencyLimited, Limited, NotResent, Safety, classify
from sogni_cli.core.errors import ApiError, ExitCode, TimeoutError_, UnavailableError

from .conftest import BASE_URL, CANARY_KEY

WF = f"{BASE_URL}/v1/creative-agent/workflows"
EXEC = f"{BASE_URL}/v1/creative-agent/tools/execute"
CHAT = f"{BASE_URL}/v1/chat/completions"
RECORD = {"status": "success", "data": {"workflow": {"workflowId": "wf_1", "status": "queued"}}}


class CutBody(httpx.SyncByteStream):
    """A body that stops half-way: the connection closes before the announced length."""

    def __init__(self, data: bytes):
        self.data = data

    def __iter__(self):
        yield self.data[:50]
        raise httpx.RemoteProtocolError("peer closed connection without sending complete message body")


def cut(httpx_mock, url: str, method: str) -> None:
    body = json.dumps(RECORD).encode()
    httpx_mock.add_response(url=url, method=method, stream=CutBody(body),
                            headers={"Content-Length": str(len(body)), "Content-Type": "application/json"})


@pytest.fixture
def slept():
    return []


@pytest.fixture
def signals():
    return []


@pytest.fixture
def api(slept, signals):
    c = ApiClient(ClientConfig(base_url=BASE_URL, api_key=CANARY_KEY, sleep=slept.append, random=lambda: 0.0,
                               on_limited=signals.append, read_timeout=30.0))
    yield c
    c.close()


def keys(httpx_mock, url: str) -> list[str | None]:
    return [r.headers.get("Idempotency-Key") for r in httpx_mock.get_requests() if str(r.url).startswith(url)]


# ----------------------------------------------------------------------------------------- classes


@pytest.mark.parametrize("method,path,body,safety", [
    ("GET", "/v1/creative-agent/workflows/wf_1", None, Safety.READ),
    ("GET", "/v1/models", None, Safety.READ),
    ("PUT", "https://bucket.example/up", None, Safety.READ),
    ("POST", "/v1/creative-agent/workflows", {}, Safety.KEYED),
    ("POST", "/v1/creative-agent/workflows/wf_1/reseed", {}, Safety.KEYED),
    ("POST", "/v1/creative-agent/workflows/wf_1/cancel", {}, Safety.KEYED),
    ("POST", "/v1/chat/runs", {}, Safety.KEYED),
    ("POST", "/v1/chat/runs/r1/confirm-cost", {}, Safety.KEYED),
    ("POST", "/v1/creative-agent/tools/execute", {}, Safety.PAID),
    ("POST", "/v1/creative-agent/workflows/wf_1/resume", {}, Safety.PAID),
    ("POST", "/v1/chat/completions", {"messages": []}, Safety.PAID),  # Sogni's tools are on by default
    ("POST", "/v1/chat/completions", {"sogni_tools": "rich"}, Safety.PAID),
    ("POST", "/v1/chat/completions", {"sogni_tools": False}, Safety.READ),
    ("POST", "/v1/chat/completions", {"sogni_tools": True, "sogni_tool_execution": False}, Safety.READ),
])
def test_route_classes(method, path, body, safety):
    assert classify(method, path, body) is safety


# ----------------------------------------------------------------------------------------- cut bodies


def test_cut_body_of_a_read_is_retried(api, httpx_mock, slept):
    cut(httpx_mock, f"{WF}/wf_1", "GET")
    httpx_mock.add_response(url=f"{WF}/wf_1", method="GET", json=RECORD)
    assert api.request("GET", "/v1/creative-agent/workflows/wf_1") == RECORD
    assert len(httpx_mock.get_requests()) == 2 and slept == [0.5]


def test_cut_create_answer_is_resent_with_the_same_key(api, httpx_mock, slept):
    cut(httpx_mock, WF, "POST")
    httpx_mock.add_response(url=WF, method="POST", json=RECORD)
    assert api.request("POST", "/v1/creative-agent/workflows", json={"input": {}}, idempotent=True) == RECORD
    sent = keys(httpx_mock, WF)
    assert len(sent) == 2 and sent[0] and sent[0] == sent[1]
    assert slept == [0.5]


def test_a_key_decided_before_sending_is_the_one_sent(api, httpx_mock):
    cut(httpx_mock, WF, "POST")
    httpx_mock.add_response(url=WF, method="POST", json=RECORD)
    api.request("POST", "/v1/creative-agent/workflows", json={}, idempotency_key="job-7f3a")
    assert keys(httpx_mock, WF) == ["job-7f3a", "job-7f3a"]


def test_cut_answer_of_paid_work_is_not_resent(api, httpx_mock, slept):
    cut(httpx_mock, EXEC, "POST")
    with pytest.raises(NotResent) as info:
        api.request("POST", "/v1/creative-agent/tools/execute", json={"tool": "t"}, idempotent=True)
    assert info.value.exit_code == ExitCode.UNAVAILABLE
    assert "not sent again" in info.value.message and info.value.idempotency_key == keys(httpx_mock, EXEC)[0]
    assert len(httpx_mock.get_requests()) == 1 and slept == []


def test_cut_body_with_retries_spent_is_unavailable(httpx_mock, slept):
    c = ApiClient(ClientConfig(base_url=BASE_URL, api_key=CANARY_KEY, sleep=slept.append, max_retries=0))
    cut(httpx_mock, f"{WF}/wf_1", "GET")
    with pytest.raises(UnavailableError) as info:
        c.request("GET", "/v1/creative-agent/workflows/wf_1")
    assert info.value.exit_code == ExitCode.UNAVAILABLE and "broke off" in info.value.message


# ----------------------------------------------------------------------------------------- paid work


def test_paid_work_is_resent_only_when_the_api_cannot_have_acted(api, httpx_mock, slept, signals):
    httpx_mock.add_exception(httpx.ConnectError("refused"), url=EXEC)
    httpx_mock.add_response(url=EXEC, status_code=429, headers={"Retry-After": "2"}, json={})
    httpx_mock.add_response(url=EXEC, status_code=503, json={"status": "error", "message": "restarting",
                                                             "errorCode": 503, "retryAfter": 1})
    httpx_mock.add_response(url=EXEC, json={"data": {"message": "ok"}})
    c = ApiClient(ClientConfig(base_url=BASE_URL, api_key=CANARY_KEY, sleep=slept.append, random=lambda: 0.0,
                               max_retries=3, on_limited=signals.append))
    assert c.request("POST", "/v1/creative-agent/tools/execute", json={}, idempotent=True) == {"data": {"message": "ok"}}
    sent = keys(httpx_mock, EXEC)
    assert len(sent) == 4 and len(set(sent)) == 1
    assert slept == [0.5, 2.0, 1.0]
    assert signals == [Limited("rate", 429, "POST", "/v1/creative-agent/tools/execute", retry_after=2.0, waited=2.0)]


@pytest.mark.parametrize("status,headers", [(500, {}), (502, {}), (503, {}), (504, {}), (524, {})])
def test_paid_work_is_not_resent_after_an_error_it_may_have_acted_on(api, httpx_mock, slept, status, headers):
    httpx_mock.add_response(url=EXEC, status_code=status, headers=headers, json={"error": {"message": "boom"}})
    with pytest.raises(ApiError) as info:
        api.request("POST", "/v1/creative-agent/tools/execute", json={}, idempotent=True)
    assert info.value.exit_code == ExitCode.UNAVAILABLE and "not sent again" in info.value.hint
    assert len(httpx_mock.get_requests()) == 1 and slept == []


def test_paid_work_timeout_is_not_resent(api, httpx_mock, slept):
    httpx_mock.add_exception(httpx.ReadTimeout("slow"), url=EXEC)
    with pytest.raises(NotResent) as info:
        api.request("POST", "/v1/creative-agent/tools/execute", json={}, idempotent=True)
    assert info.value.exit_code == ExitCode.TIMEOUT
    assert len(httpx_mock.get_requests()) == 1 and slept == []


def test_keyed_create_is_resent_after_5xx_and_timeouts_with_one_key(api, httpx_mock, slept):
    httpx_mock.add_response(url=WF, status_code=500, json={})
    httpx_mock.add_exception(httpx.ReadTimeout("slow"), url=WF)
    httpx_mock.add_response(url=WF, json=RECORD)
    api.request("POST", "/v1/creative-agent/workflows", json={}, idempotent=True)
    sent = keys(httpx_mock, WF)
    assert len(sent) == 3 and len(set(sent)) == 1 and sent[0]
    assert slept == [0.5, 1.0]


def test_reads_after_retries_spent_time_out_with_exit_6(api, httpx_mock, slept):
    for _ in range(3):
        httpx_mock.add_exception(httpx.ReadTimeout("slow"), url=f"{WF}/wf_1")
    with pytest.raises(TimeoutError_):
        api.request("GET", "/v1/creative-agent/workflows/wf_1")
    assert slept == [0.5, 1.0]


# ----------------------------------------------------------------------------------------- waits


@pytest.mark.parametrize("headers,body,wait", [
    ({"retry-after-ms": "1500"}, {}, 1.5),
    ({"Retry-After": "7"}, {}, 7.0),
    ({}, {"status": "error", "message": "slow", "errorCode": 429, "retryAfter": 4}, 4.0),
    ({}, {"error": {"message": "slow", "retry_after": 3}}, 3.0),
    ({"Retry-After": "3600"}, {}, 60.0),
    ({"Retry-After": "soon"}, {}, 0.5),  # unreadable: backoff
])
def test_every_form_of_retry_after(api, httpx_mock, slept, headers, body, wait):
    httpx_mock.add_response(url=f"{BASE_URL}/v1/models", status_code=429, headers=headers, json=body)
    httpx_mock.add_response(url=f"{BASE_URL}/v1/models", json={"data": []})
    api.request("GET", "/v1/models")
    assert slept == [wait]


def test_retry_after_as_an_http_date(api, httpx_mock, slept):
    import email.utils
    import time

    when = email.utils.formatdate(time.time() + 30, usegmt=True)
    httpx_mock.add_response(url=f"{BASE_URL}/v1/models", status_code=503, headers={"Retry-After": when}, json={})
    httpx_mock.add_response(url=f"{BASE_URL}/v1/models", json={})
    api.request("GET", "/v1/models")
    assert len(slept) == 1 and 25 <= slept[0] <= 30


def test_policy_of_the_client_follows_its_settings(api):
    api.config.read_timeout = 2.0
    api.config.max_retries = 1
    p = api.policy
    assert isinstance(p, RetryPolicy) and (p.timeout, p.max_retries, p.connect_timeout) == (2.0, 1, 10.0)


# ----------------------------------------------------------------------------------------- a busy account

BUSY = {"status": "error", "message": "Too many active workflows: 2 of 2 are running; wait for one to finish",
        "errorCode": "TOO_MANY_ACTIVE_WORKFLOWS", "details": {"activeWorkflows": 2, "limit": 2}}


def listing(*statuses: str) -> dict:
    return {"status": "success", "data": {"workflows": [{"workflowId": f"wf_{i}", "status": s}
                                                        for i, s in enumerate(statuses)]}}


def test_409_busy_account_waits_for_a_slot_then_resends_with_the_same_key(api, httpx_mock, slept, signals):
    httpx_mock.add_response(url=WF, method="POST", status_code=409, json=BUSY)
    httpx_mock.add_response(url=f"{WF}?limit=100", method="GET", json=listing("running", "queued", "completed"))
    httpx_mock.add_response(url=f"{WF}?limit=100", method="GET", json=listing("completed", "running", "completed"))
    httpx_mock.add_response(url=WF, method="POST", json=RECORD)
    assert api.request("POST", "/v1/creative-agent/workflows", json={}, idempotent=True) == RECORD
    sent = [(r.method, r.url.path) for r in httpx_mock.get_requests()]
    assert sent == [("POST", "/v1/creative-agent/workflows"), ("GET", "/v1/creative-agent/workflows"),
                    ("GET", "/v1/creative-agent/workflows"), ("POST", "/v1/creative-agent/workflows")]
    posted = keys(httpx_mock, WF)
    posted = [k for r, k in zip(httpx_mock.get_requests(), posted) if r.method == "POST"]
    assert len(posted) == 2 and posted[0] == posted[1]
    assert slept == [1.0, 2.0]  # polls of the account's workflows, not blind resends
    assert [s.kind for s in signals] == ["concurrency"] and (signals[0].active, signals[0].limit) == (2, 2)


def test_409_busy_account_gives_up_after_timeout(httpx_mock, slept, signals):
    c = ApiClient(ClientConfig(base_url=BASE_URL, api_key=CANARY_KEY, sleep=slept.append, read_timeout=5.0,
                               on_limited=signals.append))
    httpx_mock.add_response(url=WF, method="POST", status_code=409, json=BUSY)
    httpx_mock.add_response(url=f"{WF}?limit=100", method="GET", json=listing("running", "running"),
                            is_reusable=True)
    with pytest.raises(ConcurrencyLimited) as info:
        c.request("POST", "/v1/creative-agent/workflows", json={}, idempotent=True)
    assert info.value.exit_code == ExitCode.UNAVAILABLE and "(2 of 2)" in info.value.message
    assert sum(slept) == pytest.approx(5.0)  # bounded by --timeout
    assert [r.method for r in httpx_mock.get_requests()].count("POST") == 1
    assert info.value.idempotency_key == httpx_mock.get_requests()[0].headers["Idempotency-Key"]


def test_409_waiter_with_wake_on_slot_looks_again_as_soon_as_a_followed_workflow_ends(httpx_mock, slept, signals):
    import threading

    seen = threading.Event()
    c = ApiClient(ClientConfig(base_url=BASE_URL, api_key=CANARY_KEY, sleep=slept.append, read_timeout=120.0,
                               wake_on_slot=True, on_limited=lambda s: (signals.append(s), seen.set())))
    busy = dict(BUSY, retryAfter=60)  # a long first pause: only the wake-up can end it early
    httpx_mock.add_response(url=WF, method="POST", status_code=409, json=busy)
    httpx_mock.add_response(url=f"{WF}?limit=100", method="GET", json=listing("running", "completed"))
    httpx_mock.add_response(url=WF, method="POST", json=RECORD)
    got: list = []
    worker = threading.Thread(target=lambda: got.append(
        c.request("POST", "/v1/creative-agent/workflows", json={}, idempotent=True)), daemon=True)
    worker.start()
    assert seen.wait(30)  # failure guard
    from tests.e2e.conftest import wait_for

    def woken() -> bool:  # the waiter may not be waiting yet: tell it until it has gone
        c.slot_freed()
        return not worker.is_alive()

    wait_for(woken, timeout=20)  # far less than the 60 s pause it would otherwise sleep
    assert got == [RECORD]
    assert slept == []  # it waited on the wake-up, not on a sleep
    assert [r.method for r in httpx_mock.get_requests()] == ["POST", "GET", "POST"]
    c.close()


def test_409_without_waiting_raises_concurrency_limited_at_once(httpx_mock, slept, signals):
    c = ApiClient(ClientConfig(base_url=BASE_URL, api_key=CANARY_KEY, sleep=slept.append, wait_for_slot=False,
                               on_limited=signals.append))
    httpx_mock.add_response(url=WF, method="POST", status_code=409, json=BUSY)
    with pytest.raises(ConcurrencyLimited):
        c.request("POST", "/v1/creative-agent/workflows", json={}, idempotent=True)
    assert len(httpx_mock.get_requests()) == 1 and slept == []
    assert signals[0].kind == "concurrency" and signals[0].waited is None


def test_other_409s_are_not_waited_for(api, httpx_mock, slept):
    httpx_mock.add_response(url=WF, method="POST", status_code=409,
                            json={"status": "error", "message": "Idempotency-Key was already used with a different "
                                                                "request body", "errorCode": 409})
    with pytest.raises(ApiError) as info:
        api.request("POST", "/v1/creative-agent/workflows", json={}, idempotent=True)
    assert info.value.exit_code == ExitCode.REJECTED and slept == [] and len(httpx_mock.get_requests()) == 1


# ----------------------------------------------------------------------------------------- uploads, downloads


def test_presigned_put_follows_the_policy(httpx_mock, slept):
    from sogni_cli.api.uploads import put_bytes

    up = "https://bucket.example/up?sig=1"
    httpx_mock.add_response(url=up, method="PUT", status_code=503, headers={"Retry-After": "3"})
    httpx_mock.add_exception(httpx.ReadTimeout("slow"), url=up)
    httpx_mock.add_response(url=up, method="PUT")
    put_bytes(up, b"abc", "image/png", policy=RetryPolicy(max_retries=2, sleep=slept.append, random=lambda: 0.0))
    assert slept == [3.0, 1.0]
    assert all("authorization" not in r.headers and "api-key" not in r.headers for r in httpx_mock.get_requests())


def test_downloads_follow_the_policy(httpx_mock, tmp_path, slept):
    from sogni_cli.media.downloads import ArtifactRef, DownloadOptions, download_all

    url = "https://cdn.example/a.png"
    httpx_mock.add_response(url=url, status_code=503, headers={"Retry-After": "Thu, 01 Jan 1970 00:00:00 GMT"})
    httpx_mock.add_response(url=url, status_code=502)
    policy = RetryPolicy(max_retries=1, timeout=2.0, sleep=slept.append, random=lambda: 0.0)
    report = download_all([ArtifactRef(url)], DownloadOptions(output_dir=tmp_path, retries=5, policy=policy))
    assert "502" in report.failed[0][1] and "after 1 retry" in report.failed[0][1]
    assert slept == [0.0]  # an HTTP date in the past: no wait
    assert len(httpx_mock.get_requests()) == 2


def test_a_cookie_the_api_sets_goes_back_with_its_later_requests(api, httpx_mock):
    """Answers without cookies skip the cookie jar's work; one that sets a cookie (a load balancer's, say)
    is kept and sent back to the API, as any HTTP client would."""
    httpx_mock.add_response(url=f"{WF}/wf_1", method="GET", json=RECORD)
    httpx_mock.add_response(url=f"{WF}/wf_1", method="GET", json=RECORD, headers={"Set-Cookie": "lb=node7; Path=/"})
    httpx_mock.add_response(url=f"{WF}/wf_1", method="GET", json=RECORD)
    for _ in range(3):
        assert api.request("GET", "/v1/creative-agent/workflows/wf_1") == RECORD
    sent = [r.headers.get("Cookie") for r in httpx_mock.get_requests()]
    assert sent == [None, None, "lb=node7"]
