"""Money you can see and cap, against a scripted API: `sogni account`, `auth status --check`, `--estimate`,
approvals by policy (`--approve-up-to`, `workflow approve`), out-of-credit errors, bad amounts, costs after
paying, `doctor`. Every test asserts the exact requests sent."""

from __future__ import annotations

import json

import httpx
import pytest

from tests.conftest import BASE_URL
from tests.test_media_commands import WF, FakeAPI

PREVIEW = {"totalEstimatedCapacityUnits": 12, "tokenType": "spark", "validityUntil": "2099-01-01T00:00:00Z",
           "perToolBreakdown": [{"stepId": "step_1", "toolName": "generate_image", "estimatedCapacityUnits": 12}]}


def ok(data):
    return {"status": "success", "data": data}


def sent(httpx_mock, method=None, path=None):
    return [r for r in httpx_mock.get_requests() if (method is None or r.method == method)
            and (path is None or r.url.path == path)]


def body(req):
    return json.loads(req.content)


# ------------------------------------------------------------------------------------------- account


def _account_routes(httpx_mock, usage_status=200):
    httpx_mock.add_response(method="GET", url=f"{BASE_URL}/v1/account/me",
                            json=ok({"username": "ada", "currentEmail": "ada@example.com"}))
    httpx_mock.add_response(method="GET", url=f"{BASE_URL}/v4/account/balance", json=ok({
        "spark": {"credit": "120.00", "debit": "20.50", "net": "99.50", "settled": "99.50", "premiumCredit": "0"},
        "sogni": {"credit": "5", "debit": "0", "net": "5", "settled": "5"}}))
    httpx_mock.add_response(method="GET", url=f"{BASE_URL}/v1/subscriptions/status", json=ok({"subscription": {
        "active": True, "status": "active", "tier": "pro", "currentPeriodEnd": "2027-01-01T00:00:00Z",
        "capabilities": {"maxConcurrentWorkflows": 4}}}))
    if usage_status == 200:
        httpx_mock.add_response(method="GET", url=f"{BASE_URL}/v1/subscriptions/usage", json=ok({"usage": {
            "periodStart": "2026-12-01T00:00:00Z", "capacityUnitsUsed": 321,
            "fairUse": {"limited": True, "resetAt": "2026-12-05T00:00:00Z"}}}))
    else:
        httpx_mock.add_response(method="GET", url=f"{BASE_URL}/v1/subscriptions/usage", status_code=usage_status,
                                json={"status": "error", "message": "no such route", "errorCode": 404})


def test_account_shows_balances_subscription_usage_fair_use_and_concurrency(cli, httpx_mock, env_key):
    _account_routes(httpx_mock)
    res = cli("account")
    assert res.exit_code == 0, res.stderr
    lines = res.stdout.splitlines()
    assert lines[0] == "Account:      ada (ada@example.com)"
    assert "Balance:      spark 99.5  (credit 120, debit 20.5, settled 99.5, premiumCredit 0)" in lines
    assert "Balance:      sogni 5  (credit 5, debit 0, settled 5)" in lines
    assert "Subscription: pro active, renews 2027-01-01T00:00:00Z" in lines
    assert "Usage:        321 capacity units this cycle (since 2026-12-01T00:00:00Z)" in lines
    assert "Fair use:     limited until 2026-12-05T00:00:00Z" in lines
    assert "Concurrency:  4" in lines
    assert [(r.method, r.url.path) for r in httpx_mock.get_requests()] == [
        ("GET", "/v1/account/me"), ("GET", "/v4/account/balance"), ("GET", "/v1/subscriptions/status"),
        ("GET", "/v1/subscriptions/usage")]


def test_account_json_and_a_missing_usage_route(cli, httpx_mock, env_key):
    _account_routes(httpx_mock, usage_status=404)
    res = cli("account", "--json")
    assert res.exit_code == 0, res.stderr
    doc = json.loads(res.stdout)
    assert doc["balance"]["spark"]["net"] == 99.5 and doc["balance"]["sogni"]["credit"] == 5
    assert doc["usage"] is None and doc["fair_use"] is None and doc["concurrency"] == 4
    assert doc["account"] == {"username": "ada", "email": "ada@example.com", "wallet": None}


def test_auth_status_check_names_the_account(cli, httpx_mock, env_key):
    httpx_mock.add_response(method="GET", url=f"{BASE_URL}/v1/account/me", json=ok({"username": "ada"}))
    res = cli("auth", "status", "--check")
    assert res.exit_code == 0, res.stderr
    assert "Account: ada" in res.stdout.splitlines()


def test_auth_status_check_refused_key_is_exit_3(cli, httpx_mock, env_key):
    httpx_mock.add_response(method="GET", url=f"{BASE_URL}/v1/account/me", status_code=401,
                            json={"status": "error", "message": "Invalid API key", "errorCode": 401})
    res = cli("auth", "status", "--check")
    assert res.exit_code == 3
    assert "The API refused the key" in res.stderr


# ------------------------------------------------------------------------------------------- --estimate


def test_estimate_previews_exactly_the_request_and_starts_nothing(cli, httpx_mock, env_key, tmp_cwd):
    httpx_mock.add_response(method="POST", url=f"{BASE_URL}{WF}/preview", json=ok({"preview": PREVIEW}))
    res = cli("image", "a fox", "--width", "512", "-n", "2", "--token-type", "sogni", "--max-cost", "30",
              "--estimate")
    assert res.exit_code == 0, res.stderr
    reqs = httpx_mock.get_requests()
    assert len(reqs) == 1 and reqs[0].method == "POST" and reqs[0].url.path == f"{WF}/preview"
    assert body(reqs[0]) == {"input": {"steps": [{"toolName": "generate_image", "arguments": {
        "prompt": "a fox", "width": 512, "numberOfVariations": 2}}]}, "token_type": "sogni",
        "max_estimated_capacity_units": 30}
    assert res.stdout.splitlines() == [
        "generate_image: 12 capacity units (spark), valid until 2099-01-01T00:00:00Z",
        "  generate_image: 12 capacity units"]
    assert not list(tmp_cwd.iterdir())


def test_estimate_json(cli, httpx_mock, env_key, tmp_cwd):
    httpx_mock.add_response(method="POST", url=f"{BASE_URL}{WF}/preview", json=ok({"preview": PREVIEW}))
    res = cli("music", "lo-fi", "--duration", "30", "--estimate", "--json")
    assert res.exit_code == 0, res.stderr
    doc = json.loads(res.stdout)
    assert doc["previewed"] is True and doc["units"] == 12 and doc["token_type"] == "spark"
    assert doc["tool"] == "generate_music" and doc["preview"] == PREVIEW


def test_estimate_when_the_api_cannot_preview_says_so_without_a_number(cli, httpx_mock, env_key, tmp_cwd):
    httpx_mock.add_response(method="POST", url=f"{BASE_URL}{WF}/preview", status_code=404,
                            json={"status": "error", "message": "not found", "errorCode": 404})
    res = cli("video", "waves", "--estimate")
    assert res.exit_code == 0, res.stderr
    assert res.stdout == "generate_video: no cost preview (the API cannot preview this request).\n"
    assert len(httpx_mock.get_requests()) == 1


def test_estimate_of_a_synchronous_tool_sends_nothing(cli, httpx_mock, env_key, tmp_cwd):
    res = cli("tools", "run", "enhance_prompt", "--arg", "prompt=a cat", "--arg", "target_output=image_prompt",
              "--arg", "destination_model=z-turbo", "--estimate")
    assert res.exit_code == 0, res.stderr
    assert "no cost preview" in res.stdout and "enhance_prompt runs synchronously" in res.stdout
    assert httpx_mock.get_requests() == []


@pytest.mark.parametrize("args", [
    ["image", "x", "--estimate", "--detach"],
    ["image", "x", "--approve-up-to", "abc"],
    ["image", "x", "--approve-up-to", "0"],
    ["image", "x", "--approve-up-to", "-5"],
    ["image", "x", "--approve-up-to", "nan"],
    ["image", "x", "--max-cost", "0"],
    ["image", "x", "--max-cost", "-2"],
    ["image", "x", "--max-cost", "lots"],
    ["speech", "hi", "--approve-up-to", "inf"],
    ["workflow", "approve", "wf_1", "--up-to", "0"],
])
def test_bad_amounts_exit_2_before_anything_is_sent(cli, httpx_mock, env_key, tmp_cwd, args):
    res = cli(*args)
    assert res.exit_code == 2, res.stderr
    assert httpx_mock.get_requests() == []


def test_bad_budget_exits_2_before_anything_is_sent(cli, httpx_mock, env_key, tmp_cwd):
    from tests.conftest import ONE_JOB_RECIPE

    (tmp_cwd / "r.yaml").write_text(ONE_JOB_RECIPE)
    for bad in ("0", "-1", "ten", "nan"):
        res = cli("recipe", "run", "r.yaml", "-o", "out", "--budget", bad)
        assert res.exit_code == 2 and "--budget must be a positive number" in res.stderr
    res = cli("recipe", "run", "r.yaml", "-o", "out", "--approve-up-to", "-1")
    assert res.exit_code == 2
    assert httpx_mock.get_requests() == []


# ------------------------------------------------------------------------------------------- approvals


def _waiting(api: FakeAPI, preview: dict) -> dict:
    return dict(api.record("waiting_for_user"), waitingReason="cost_approval_required", awaitingCostApproval=True,
                billingPreview=preview, waiting={"reason": "cost_approval_required",
                                                 "details": {"costApprovalPreview": preview}})


def _approval_api(httpx_mock, first_preview: dict, fresh_preview: dict | None = None, stale_once: bool = False):
    """A workflow that waits for approval, then runs to completion once confirm-cost accepts a preview."""
    api = FakeAPI(httpx_mock)
    state = {"approved": False, "stale": stale_once, "confirms": []}
    waiting_stream = [b'id: 1\nevent: workflow_waiting_for_user\ndata: ' + json.dumps({
        "id": "wf_t1:1", "workflowId": "wf_t1", "sequence": 1, "type": "workflow_waiting_for_user",
        "status": "waiting_for_user", "data": {"status": "waiting_for_user"}}).encode() + b"\n\n"]
    api.streams = [waiting_stream]

    def intercept(request: httpx.Request):
        path = request.url.path
        if request.method == "POST" and path == f"{WF}/wf_t1/confirm-cost":
            sent_preview = json.loads(request.content).get("acceptedCostPreview")
            state["confirms"].append(json.loads(request.content))
            current = fresh_preview or first_preview
            if state["stale"] or sent_preview != current:
                state["stale"] = False
                return httpx.Response(409, json={"status": "error", "message": "stale preview",
                                                 "errorCode": "COST_PREVIEW_STALE"})
            state["approved"] = True
            api.streams = [__import__("tests.test_media_commands", fromlist=["happy_events"]).happy_events()]
            return httpx.Response(200, json=ok({"workflow": api.record("running")}))
        if request.method == "GET" and path == f"{WF}/wf_t1" and not state["approved"]:
            preview = fresh_preview if (fresh_preview and state.get("read")) else first_preview
            state["read"] = True
            return httpx.Response(200, json=ok({"workflow": _waiting(api, preview)}))
        return None

    api.intercept = intercept
    return api, state


def test_approve_up_to_within_the_preview_approves_it_and_finishes(cli, httpx_mock, env_key, tmp_cwd):
    api, state = _approval_api(httpx_mock, PREVIEW)
    res = cli("image", "x", "--approve-up-to", "12")
    assert res.exit_code == 0, res.stderr
    assert state["confirms"] == [{"decision": "confirm", "acceptedCostPreview": PREVIEW}]
    assert "Approving 12 capacity units (spark)" in res.stderr
    assert res.stdout.splitlines() == ["x-1.png"]
    # the second stream resumes after the event already seen
    streams = sent(httpx_mock, "GET", f"{WF}/wf_t1/events/stream")
    assert streams[-1].headers.get("last-event-id") == "1"


def test_approve_up_to_below_the_preview_is_exit_9_with_the_command(cli, httpx_mock, env_key, tmp_cwd):
    api, state = _approval_api(httpx_mock, PREVIEW)
    res = cli("image", "x", "--approve-up-to", "11.5")
    assert res.exit_code == 9
    assert state["confirms"] == []
    assert "Workflow wf_t1 is waiting for cost approval: 12 capacity units (spark)" in res.stderr
    assert "(above --approve-up-to 11.5)" in res.stderr
    assert "`sogni workflow approve wf_t1 --up-to 12`" in res.stderr


def test_an_expired_preview_is_fetched_again_never_approved_blindly(cli, httpx_mock, env_key, tmp_cwd):
    old = dict(PREVIEW, validityUntil="2000-01-01T00:00:00Z")
    fresh = dict(PREVIEW, totalEstimatedCapacityUnits=10, validityUntil="2099-02-02T00:00:00Z")
    api, state = _approval_api(httpx_mock, old, fresh)
    res = cli("image", "x", "--approve-up-to", "12")
    assert res.exit_code == 0, res.stderr
    assert [c["acceptedCostPreview"] for c in state["confirms"]] == [fresh]


def test_a_stale_answer_reads_the_preview_again_and_decides_again(cli, httpx_mock, env_key, tmp_cwd):
    api, state = _approval_api(httpx_mock, PREVIEW, stale_once=True)
    res = cli("image", "x", "--approve-up-to", "20")
    assert res.exit_code == 0, res.stderr
    assert len(state["confirms"]) == 2


def test_workflow_approve_a_workflow_that_is_not_waiting_is_exit_4_with_its_state(cli, httpx_mock, env_key):
    httpx_mock.add_response(method="GET", url=f"{BASE_URL}{WF}/wf_9",
                            json=ok({"workflow": {"workflowId": "wf_9", "status": "running"}}))
    res = cli("workflow", "approve", "wf_9")
    assert res.exit_code == 4
    assert "Workflow wf_9 is not waiting for cost approval (it is running)" in res.stderr
    assert not sent(httpx_mock, "POST")


def test_workflow_approve_up_to_below_the_preview_sends_nothing(cli, httpx_mock, env_key):
    api, state = _approval_api(httpx_mock, PREVIEW)
    res = cli("workflow", "approve", "wf_t1", "--up-to", "5")
    assert res.exit_code == 9 and "(above --up-to 5)" in res.stderr
    assert state["confirms"] == []


def test_workflow_approve_sends_the_preview_back_unchanged(cli, httpx_mock, env_key):
    api, state = _approval_api(httpx_mock, PREVIEW)
    res = cli("workflow", "approve", "wf_t1", "--up-to", "12")
    assert res.exit_code == 0, res.stderr
    assert res.stdout == "wf_t1 running\n"
    assert state["confirms"] == [{"decision": "confirm", "acceptedCostPreview": PREVIEW}]
    assert sent(httpx_mock, "POST", f"{WF}/wf_t1/confirm-cost")[0].headers.get("idempotency-key")


# ------------------------------------------------------------------------------------------- out of credit


def test_out_of_credit_shows_the_balance_what_was_needed_and_a_hint(cli, httpx_mock, env_key, tmp_cwd):
    httpx_mock.add_response(method="POST", url=f"{BASE_URL}{WF}", status_code=402, json={
        "status": "error", "message": "Insufficient balance", "errorCode": 123, "details": {"required": 40}})
    httpx_mock.add_response(method="GET", url=f"{BASE_URL}/v4/account/balance", json=ok({
        "spark": {"credit": "3", "debit": "0", "net": "3", "settled": "3"}}))
    httpx_mock.add_response(method="GET", url=f"{BASE_URL}/v1/subscriptions/usage", json=ok({"usage": {
        "fairUse": {"limited": False}}}))
    res = cli("video", "waves")
    assert res.exit_code == 9
    assert "Error: 402 Insufficient balance." in res.stderr
    assert "Needed: 40 capacity units." in res.stderr and "Balance: spark 3" in res.stderr
    assert "Hint: Add credits at https://dashboard.sogni.ai" in res.stderr


def test_fair_use_limit_says_when_it_resets(cli, httpx_mock, env_key, tmp_cwd):
    httpx_mock.add_response(method="POST", url=f"{BASE_URL}{WF}", status_code=429, json={
        "error": {"message": "Fair-use limit reached", "type": "subscription_unavailable", "code": 4079}})
    httpx_mock.add_response(method="GET", url=f"{BASE_URL}/v4/account/balance", json=ok({}))
    httpx_mock.add_response(method="GET", url=f"{BASE_URL}/v1/subscriptions/usage", json=ok({"usage": {
        "fairUse": {"limited": True, "resetAt": "2026-12-05T00:00:00Z"}}}))
    res = cli("--max-retries", "0", "image", "x")
    assert res.exit_code == 9
    assert "Fair-use limit reached; it resets at 2026-12-05T00:00:00Z." in res.stderr
    assert "Hint: Wait for the fair-use limit to reset" in res.stderr


# ------------------------------------------------------------------------------------------- cost after paying


def test_cost_reported_by_the_api_in_json_and_jsonl(cli, httpx_mock, env_key, tmp_cwd):
    api = FakeAPI(httpx_mock)
    api.final_record = {"cost": {"capacityUnits": 2, "tokenType": "spark"}}
    res = cli("image", "x", "--json")
    assert res.exit_code == 0, res.stderr
    assert json.loads(res.stdout)["cost"] == {"units": 2.0, "token_type": "spark"}
    api.streams = [__import__("tests.test_media_commands", fromlist=["happy_events"]).happy_events()]
    res = cli("image", "x", "--jsonl")
    events = [json.loads(line) for line in res.stdout.splitlines()]
    assert {"event": "cost", "workflow_id": "wf_t1", "units": 2.0, "token_type": "spark"} in events
    assert events[-1]["event"] == "done"


def test_cost_line_on_stderr(cli, httpx_mock, env_key, tmp_cwd):
    api = FakeAPI(httpx_mock)
    api.final_record = {"cost": {"capacityUnits": 2.5, "tokenType": "sogni"}}
    res = cli("image", "x")
    assert res.exit_code == 0 and "Cost: 2.5 capacity units (sogni)" in res.stderr
    assert res.stdout == "x-1.png\n"


# ------------------------------------------------------------------------------------------- doctor


def test_doctor_names_a_refused_key(cli, httpx_mock, env_key, tmp_path):
    httpx_mock.add_response(method="GET", url=f"{BASE_URL}/v1/account/me", status_code=401,
                            json={"status": "error", "message": "Invalid API key", "errorCode": 401})
    res = cli("doctor")
    assert res.exit_code == 3, res.stderr
    lines = res.stdout.splitlines()
    assert any(line.startswith("fail  key accepted") and "refused the key (HTTP 401)" in line for line in lines)
    assert any(line.startswith("ok    base URL") for line in lines)
    assert "Error: doctor: key accepted check failed" in res.stderr
    assert len(httpx_mock.get_requests()) == 1


def test_doctor_names_an_unreachable_base_url(cli, httpx_mock, env_key):
    httpx_mock.add_exception(httpx.ConnectError("refused"), url=f"{BASE_URL}/v1/account/me")
    res = cli("doctor", "--json")
    assert res.exit_code == 5
    doc = json.loads(res.stdout)
    assert doc["ok"] is False and doc["failed"] == ["base URL"]
    verdicts = {c["name"]: c["verdict"] for c in doc["checks"]}
    assert verdicts["key accepted"] == "skip" and verdicts["key"] == "ok"


def test_doctor_flags_a_credentials_file_others_can_read(cli, httpx_mock, env_key, tmp_path):
    import os

    cfg = tmp_path / "config"
    cfg.mkdir()
    cred = cfg / "credentials"
    cred.write_text("[default]\napi_key = x\n")
    os.chmod(cred, 0o644)
    httpx_mock.add_response(method="GET", url=f"{BASE_URL}/v1/account/me", json=ok({"username": "ada"}))
    res = cli("doctor")
    assert res.exit_code == 2
    assert any(line.startswith("fail  credentials") and "mode 644" in line for line in res.stdout.splitlines())
    assert any(line.startswith("ok    key accepted") and "ada" in line for line in res.stdout.splitlines())


def test_clock_skew_verdicts():
    import datetime as dt

    from sogni_cli.api.doctor import check_clock

    local = dt.datetime(2026, 12, 4, 16, 0, 0, tzinfo=dt.timezone.utc)
    assert check_clock("Fri, 04 Dec 2026 16:00:00 GMT", local).verdict == "ok"
    c = check_clock("Fri, 04 Dec 2026 15:59:00 GMT", local)
    assert c.verdict == "warn" and c.detail == "60 s ahead of the server"
    assert check_clock("Fri, 04 Dec 2026 17:00:00 GMT", local).verdict == "fail"
    assert check_clock(None, local).verdict == "skip"


def test_spent_counts_each_workflow_once_and_only_this_shards_lines():
    from sogni_cli.recipes.budget import spent_in_records

    lines = [{"id": "a", "workflow_id": "wf_1", "status": "started", "cost": None, "shard": None},
             {"id": "a", "workflow_id": "wf_1", "status": "interrupted", "cost": {"units": 1}, "shard": None},
             {"id": "a", "workflow_id": "wf_1", "status": "succeeded", "cost": {"units": 3}, "shard": None},
             {"id": "b", "workflow_id": "wf_2", "status": "failed", "cost": {"units": 0.5}, "shard": None},
             {"id": "c", "workflow_id": "wf_3", "status": "succeeded", "cost": {"units": 9}, "shard": "2/2"}]
    assert spent_in_records(lines, None) == 3.5
    assert spent_in_records(lines, "2/2") == 9


def test_recipe_report_costs_per_job_kind_and_total(cli, tmp_path):
    out = tmp_path / "o"
    (out / ".sogni-run").mkdir(parents=True)
    base = {"recipe": "r", "outputs": [], "duration": 1.0, "error": None, "time": "2026-01-01T00:00:00Z"}
    rows = [dict(base, id="a", kind="image", status="succeeded", cost={"units": 2, "token_type": "spark"}),
            dict(base, id="b", kind="video", status="succeeded", cost={"units": 10, "token_type": "spark"}),
            dict(base, id="c", kind="music", status="succeeded", cost={"units": 3, "token_type": "sogni"})]
    (out / ".sogni-run" / "r.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    res = cli("recipe", "report", str(out))
    assert res.exit_code == 0, res.stderr
    assert "Cost: 3 sogni, 12 spark capacity units (image 2 spark; music 3 sogni; video 10 spark)" in res.stdout
    assert any(line.startswith("b ") and "10 spark" in line for line in res.stdout.splitlines())
    doc = json.loads(cli("recipe", "report", str(out), "--json").stdout)
    assert doc["cost"]["total"] == {"spark": 12.0, "sogni": 3.0} and doc["cost"]["jobs"] == 3
    md = cli("recipe", "report", str(out), "--markdown").stdout
    assert "| `b` | video | succeeded |  | 1.0 s | 10 spark |  |" in md
    bad = dict(base, id="d", kind="image", status="succeeded", cost={"units": "lots"})
    (out / ".sogni-run" / "r.jsonl").write_text(json.dumps(bad) + "\n")
    res = cli("recipe", "report", str(out))
    assert res.exit_code == 2 and "'cost' must be an object with a number of 'units'" in res.stderr


def test_server_text_in_a_preview_is_escaped_on_the_terminal(cli, httpx_mock, env_key, tmp_cwd):
    hostile = dict(PREVIEW, tokenType="spark\x1b[2J", perToolBreakdown=[{"toolName": "x\x1b]0;pwned\x07",
                                                                          "estimatedCapacityUnits": 1}])
    httpx_mock.add_response(method="POST", url=f"{BASE_URL}{WF}/preview", json=ok({"preview": hostile}))
    res = cli("image", "x", "--estimate")
    assert res.exit_code == 0, res.stderr
    assert "\x1b" not in res.stdout and "\x07" not in res.stdout
    assert "spark\\x1b[2J" in res.stdout
