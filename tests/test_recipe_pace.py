"""Recipe concurrency backs off on 409/429 (halved, once per burst) and grows back by one per round."""

from __future__ import annotations

import textwrap

from sogni_cli.recipes.pace import COOLDOWN, Pace


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_busy_answers_halve_the_limit_once_per_burst_and_successes_raise_it_slowly():
    clock = Clock()
    pace = Pace(8, clock=clock)
    assert pace.allowed == 8
    pace.status(429)
    pace.status(429)  # the same burst
    pace.status(500)  # not a sign of a busy account
    assert pace.allowed == 4 and pace.cuts == 1
    clock.now += COOLDOWN
    pace.status(409)
    assert pace.allowed == 2
    clock.now += COOLDOWN
    pace.status(429)
    clock.now += COOLDOWN
    pace.status(429)
    assert pace.allowed == 1 and pace.lowest == 1  # never below one job
    for _ in range(3):  # one round of one job, then rounds of two ...
        pace.succeeded()
    assert pace.allowed == 2
    for _ in range(100):
        pace.succeeded()
    assert pace.allowed == 8  # ... up to --concurrency, not beyond


def test_a_run_that_meets_429s_says_it_slowed_down(cli, tmp_cwd, emu):
    (tmp_cwd / "r.yaml").write_text(textwrap.dedent("""\
        version: 1
        name: busy
        matrix: {n: [1, 2, 3, 4]}
        jobs:
          - id: pic
            matrix: true
            image: {prompt: "busy {{ matrix.n }}", width: 64, height: 64}
        """))
    emu.script([{"match": "/v1/creative-agent/workflows", "method": "POST", "action": "status", "status": 429,
                 "retry_after": 0, "times": 2}])
    res = cli("recipe", "run", "r.yaml", "-o", "out", "--concurrency", "4")
    assert res.exit_code == 0, res.stderr
    assert "The API asked to slow down 1 time(s) (409/429)" in res.stderr
    keys = [r["headers"]["idempotency-key"] for r in emu.requests if r["method"] == "POST"]
    assert len(keys) == 6 and len(set(keys)) == 4  # the retries of a create reuse its key


def test_a_watcher_sees_the_start_every_cut_and_every_raise(monkeypatch):
    from sogni_cli.recipes import pace as pace_mod

    seen: list[tuple[str, int]] = []
    monkeypatch.setattr(pace_mod, "watch", lambda p, event: seen.append((event, p.allowed)))
    clock = Clock()
    pace = Pace(4, clock=clock)
    pace.status(409)
    pace.status(409)  # the same burst: no change, nothing to tell
    pace.status(503)  # not a busy answer
    pace.succeeded()  # 2.0 -> 2.5: the number allowed is still 2
    pace.succeeded()  # 2.5 -> 2.9
    pace.succeeded()  # -> 3.24: one more job may run
    assert seen == [("start", 4), ("cut", 2), ("raise", 3)]
