"""`sogni workflow list|show|events|watch|cancel|download` against the scripted API."""

from __future__ import annotations

import json

import httpx
import pytest

from tests.test_media_commands import WF, FakeAPI, png_bytes


@pytest.fixture
def api(httpx_mock, env_key, tmp_cwd):
    return FakeAPI(httpx_mock, n_artifacts=2)


def test_list_piped_prints_ids(cli, api, httpx_mock):
    res = cli("workflow", "list", "--limit", "5", "--offset", "10")
    assert res.exit_code == 0
    assert res.stdout.splitlines() == ["wf_t1", "wf_t2"]
    req = api.requests(httpx_mock, "GET", WF)[0]
    assert dict(req.url.params) == {"limit": "5", "offset": "10"}


def test_list_table_on_a_terminal_and_json(cli, api):
    res = cli("workflow", "list", stdout_tty=True)
    lines = res.stdout.splitlines()
    assert lines[0].split() == ["ID", "STATUS", "TOOLS", "ARTIFACTS", "CREATED"]
    assert lines[1].split()[:4] == ["wf_t1", "completed", "generate_image", "2"]
    res = cli("workflow", "list", "--json")
    assert [w["workflowId"] for w in json.loads(res.stdout)] == ["wf_t1", "wf_t2"]


def test_show(cli, api):
    res = cli("workflow", "show", "wf_t1")
    assert res.exit_code == 0
    assert "Status:    completed" in res.stdout and "Artifacts: 2" in res.stdout
    assert api.artifacts[1]["url"] in res.stdout
    doc = json.loads(cli("workflow", "show", "wf_t1", "--json").stdout)
    assert doc["workflowId"] == "wf_t1" and len(doc["artifacts"]) == 2


def test_events_replay_and_jsonl(cli, api):
    res = cli("workflow", "events", "wf_t1")
    assert res.exit_code == 0
    assert len(res.stdout.splitlines()) == 5 and "workflow_completed" in res.stdout.splitlines()[-1]
    res = cli("workflow", "events", "wf_t1", "--jsonl")
    assert [json.loads(l)["sequence"] for l in res.stdout.splitlines()] == [1, 2, 3, 4, 5]


def test_events_follow(cli, api):
    res = cli("workflow", "events", "wf_t1", "--follow", "--jsonl")
    assert res.exit_code == 0
    evs = [json.loads(l) for l in res.stdout.splitlines()]
    assert [e["type"] for e in evs][-1] == "workflow_completed" and evs[-1]["status"] == "completed"


@pytest.mark.parametrize("final, code", [("completed", 0), ("failed", 7), ("cancelled", 7),
                                         ("partial_failure", 8)])
def test_watch_exit_code_follows_final_state(cli, httpx_mock, env_key, tmp_cwd, final, code):
    FakeAPI(httpx_mock, final=final)
    res = cli("workflow", "watch", "wf_t1")
    assert res.exit_code == code, res.stderr
    assert res.stdout.strip() == f"wf_t1 {final}"


def test_watch_waiting_for_credit_is_9(cli, httpx_mock, env_key, tmp_cwd):
    api = FakeAPI(httpx_mock, final="waiting_for_user")
    api.final_record = {"waitingReason": "insufficient_credit"}
    assert cli("workflow", "watch", "wf_t1").exit_code == 9


def test_cancel(cli, api, httpx_mock):
    res = cli("workflow", "cancel", "wf_t1")
    assert res.exit_code == 0 and res.stdout.strip() == "wf_t1 cancelled"
    req = api.requests(httpx_mock, "POST", f"{WF}/wf_t1/cancel")[0]
    assert json.loads(req.content) == {}


def test_download_saves_from_a_fresh_record(cli, api, httpx_mock, tmp_cwd):
    api.created.append({"input": {"steps": [{"toolName": "generate_image", "arguments": {"prompt": "sunny day"}}]}})
    res = cli("workflow", "download", "wf_t1", "-o", "got", "--name", "{workflow}-{index}")
    assert res.exit_code == 0, res.stderr
    assert res.stdout.splitlines() == ["got/wf_t1-1.png", "got/wf_t1-2.png"]
    assert api.requests(httpx_mock, "POST", WF) == []  # no new workflow
    res = cli("workflow", "download", "wf_t1", "--on-exists", "skip", "-o", "got", "--name", "{workflow}-{index}")
    assert res.exit_code == 0 and res.stdout.splitlines() == ["got/wf_t1-1.png", "got/wf_t1-2.png"]


def test_download_resumes_a_part_file_with_range(cli, api, httpx_mock, tmp_cwd):
    api.created.append({"input": {"steps": [{"toolName": "generate_image", "arguments": {"prompt": "p"}}]}})
    api.artifacts = api.artifacts[:1]
    data = png_bytes(40, 40, (1, 2, 3))
    ranges = []

    def media(request):
        rng = request.headers.get("range")
        ranges.append(rng)
        if rng:
            start = int(rng.split("=")[1].rstrip("-"))
            return httpx.Response(206, content=data[start:], headers={
                "content-type": "image/png", "content-range": f"bytes {start}-{len(data) - 1}/{len(data)}"})
        return httpx.Response(200, content=data, headers={"content-type": "image/png"})

    api.media["/runs/wf_t1/a1.png"] = media
    (tmp_cwd / "p-1.png.part").write_bytes(data[:30])
    from sogni_cli.media import downloads as dl

    # the part was left by an earlier download of this very artifact (its sidecar says so)
    dl.write_sidecar(tmp_cwd / "p-1.png.part",
                     dl.identity(dl.ArtifactRef(api.artifacts[0]["url"], index=1, workflow_id="wf_t1"), ""))
    res = cli("workflow", "download", "wf_t1")
    assert res.exit_code == 0, res.stderr
    assert ranges == ["bytes=30-"]
    assert (tmp_cwd / "p-1.png").read_bytes() == data
    assert not (tmp_cwd / "p-1.png.part").exists()


def test_download_of_a_running_workflow_is_refused(cli, api):
    api.records = [api.record("running")]
    res = cli("workflow", "download", "wf_t1")
    assert res.exit_code == 6 and "still running" in res.stderr


def test_download_of_a_failed_workflow_is_7(cli, api):
    api.records = [dict(api.record("failed"), error={"message": "boom"})]
    res = cli("workflow", "download", "wf_t1")
    assert res.exit_code == 7 and "boom" in res.stderr


def test_unknown_workflow_is_rejected(cli, api):
    res = cli("workflow", "show", "wf_nope")
    assert res.exit_code == 4 and "404" in res.stderr
