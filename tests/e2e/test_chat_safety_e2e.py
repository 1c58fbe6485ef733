"""Shell habits and the output model, end to end against the emulator in a real shell."""

from __future__ import annotations

import json
import shlex
import subprocess
import sys

CHAT = "/v1/chat/completions"


def test_a_while_read_loop_keeps_its_list(emulator, sogni_env, tmp_path):
    (tmp_path / "list").write_text("apple\nbanana\ncherry\n")
    sogni = f"{shlex.quote(sys.executable)} -m sogni_cli"
    script = f'while read x; do {sogni} chat --tools none "Describe $x"; done < list'
    proc = subprocess.run(["bash", "-c", script], cwd=tmp_path, env=sogni_env, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == ["Echo: Describe apple", "Echo: Describe banana", "Echo: Describe cherry"]
    sent = [r["json"]["messages"] for r in emulator.requests if r["path"] == CHAT]
    assert sent == [[{"role": "user", "content": f"Describe {x}"}] for x in ("apple", "banana", "cherry")]


def test_piped_text_with_stdin_flag_and_alone(emulator, sogni_env, run_sogni):
    res = run_sogni(["chat", "--tools", "none", "--stdin", "Summarise"], sogni_env, input="some notes\n")
    assert res.returncode == 0, res.stderr
    res = run_sogni(["chat", "--tools", "none"], sogni_env, input="just this")
    assert res.returncode == 0, res.stderr
    sent = [r["json"]["messages"][-1]["content"] for r in emulator.requests if r["path"] == CHAT]
    assert sent == ["some notes\n\nSummarise", "just this"]


def test_streamed_usage_and_reasoning_match_the_non_streamed_run(emulator, sogni_env, run_sogni):
    docs = []
    for flag in ("--stream", "--no-stream"):
        res = run_sogni(["chat", "--tools", "none", "--think", "--json", flag, "why is the sky blue"], sogni_env)
        assert res.returncode == 0, res.stderr
        docs.append(json.loads(res.stdout))
    streamed, plain = docs
    for doc in docs:
        msg = doc["choices"][0]["message"]
        assert msg["content"] == "Echo: why is the sky blue"
        assert msg["reasoning"] == "reasoning about: why is the sky blue"
        assert doc["usage"]["total_tokens"] > 0
    assert streamed["usage"] == plain["usage"]


def test_jsonl_hosted_run_ends_with_done_after_the_artifacts(emulator, sogni_env, run_sogni, tmp_path):
    res = run_sogni(["chat", "--jsonl", "-o", tmp_path / "out", "draw an image of a red fox"], sogni_env)
    assert res.returncode == 0, res.stderr
    kinds = [json.loads(line)["event"] for line in res.stdout.splitlines()]
    assert "artifact" in kinds and kinds[-1] == "done" and kinds.count("done") == 1
    assert max(i for i, k in enumerate(kinds) if k == "artifact") < kinds.index("done")
