"""Time from receiving a workflow's `completed` event to the first media byte being requested.

Runs the media pipeline in-process against the local emulator (small step_seconds), 10 times. The client
side stamps the moment the terminal event reaches the pipeline's ``emit``; the emulator stamps every
request it receives. The figure is the median of (first /media/ request time − completed event time).
Target: ≤ 50 ms.

    .venv/bin/python bench/bench_first_byte.py [--runs 10]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

TARGET_MS = 50.0


def one_run(emu, client, out_dir: Path) -> float:
    from sogni_cli.core.events import WorkflowUpdate
    from sogni_cli.jobs import build_job
    from sogni_cli.jobs.pipeline import PipelineOptions, run_media_job

    stamps: dict[str, float] = {}

    def emit(event) -> None:
        if isinstance(event, WorkflowUpdate) and event.status == "completed" and "done" not in stamps:
            stamps["done"] = time.time()

    before = len(emu.requests)
    job = build_job("image", {"prompt": "bench", "width": 64, "height": 64})
    result = run_media_job(client, job, PipelineOptions(output_dir=out_dir, on_exists="overwrite"), emit=emit)
    assert result.saved, "nothing saved"
    media = [r["time"] for r in emu.requests[before:] if r["path"].startswith("/media/")]
    return (media[0] - stamps["done"]) * 1000.0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args(argv)

    from sogni_cli import emulator
    from sogni_cli.api.client import ApiClient, ClientConfig

    emu = emulator.start(step_seconds=0.02)
    try:
        client = ApiClient(ClientConfig(base_url=emu.base_url, api_key="bench-key-000000"))
        with tempfile.TemporaryDirectory() as tmp:
            one_run(emu, client, Path(tmp))  # warm-up (imports, first connection)
            figures = [one_run(emu, client, Path(tmp)) for _ in range(args.runs)]
        client.close()
    finally:
        emu.stop()
    median = statistics.median(figures)
    print(f"completed event -> first media request: median {median:.1f} ms over {len(figures)} runs "
          f"(min {min(figures):.1f}, max {max(figures):.1f}); target <= {TARGET_MS:.0f} ms: "
          f"{'OK' if median <= TARGET_MS else 'MISSED'}")
    return 0 if median <= TARGET_MS else 1


if __name__ == "__main__":
    sys.exit(main())
