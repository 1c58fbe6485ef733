"""Resume end to end: a part left by an interrupted command is never joined to another workflow's file."""

from __future__ import annotations

import json

import httpx

from .conftest import E2E_KEY, interrupt_when_stalled

WF = "/v1/creative-agent/workflows"



def _artifact_url(emulator, wid: str) -> str:
    rec = httpx.get(f"{emulator.base_url}{WF}/{wid}", headers={"Authorization": "Bearer x"}).json()
    (art,) = rec["data"]["workflow"]["artifacts"]
    return art["url"]


def test_sigint_then_the_same_command_again_saves_the_new_workflows_file(emulator, sogni_env, run_sogni, tmp_path):
    out = tmp_path / "mo"
    args = ["music", "a song", "--duration", "10", "-o", str(out)]
    emulator.script([{"match": "/media/", "action": "stall_after", "bytes": 3000, "hold": 60}])
    part = out / "a-song-1.wav.part"
    sidecar = out / "a-song-1.wav.part.json"
    final = out / "a-song-1.wav"
    # The server sends 3,000 bytes and then holds the connection; Ctrl-C arrives while the part is open.
    code, _, err = interrupt_when_stalled(emulator, args, sogni_env, part, min_bytes=3000)
    assert code == 130, err
    assert "Traceback" not in err
    assert not final.exists() and part.stat().st_size == 3000
    first = err.split("Workflow: ", 1)[1].split()[0]
    assert json.loads(sidecar.read_text())["workflow_id"] == first
    assert E2E_KEY.encode() not in sidecar.read_bytes() and b"signature=" not in sidecar.read_bytes()

    # The same command again: a new workflow, whose artifact gets the same name.
    emulator.faults.clear()
    before = len(emulator.requests)
    res = run_sogni(args, sogni_env)
    assert res.returncode == 0, res.stderr
    assert res.stdout.splitlines() == [str(final)]
    second = res.stderr.split("Workflow: ", 1)[1].split()[0]
    assert second != first
    later = emulator.requests[before:]
    assert len([r for r in later if r["method"] == "POST" and r["path"] == WF]) == 1
    media = [r for r in later if r["path"].startswith("/media/")]
    assert media and all(r["path"].startswith(f"/media/{second}/") for r in media)
    assert not [r for r in media if r["headers"].get("range") or r["headers"].get("if-range")]
    assert final.read_bytes() == httpx.get(_artifact_url(emulator, second)).content  # byte-identical
    assert not part.exists() and not sidecar.exists()
    assert sorted(p.name for p in out.iterdir()) == [".sogni-downloads.json", "a-song-1.wav"]
    assert E2E_KEY.encode() not in (out / ".sogni-downloads.json").read_bytes()

    # And `workflow download` of the second workflow now lists the file without fetching it again.
    before = len(emulator.requests)
    res = run_sogni(["workflow", "download", second, "-o", str(out)], sogni_env)
    assert res.returncode == 0, res.stderr
    assert res.stdout.splitlines() == [str(final)]
    assert not [r for r in emulator.requests[before:] if r["path"].startswith("/media/")]
    assert sorted(p.name for p in out.iterdir()) == [".sogni-downloads.json", "a-song-1.wav"]
