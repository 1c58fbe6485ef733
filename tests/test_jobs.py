"""jobs.py: the field → argument mapping, build_job's checks, request bodies; the pipeline run from threads."""

from __future__ import annotations

import threading

import pytest

from sogni_cli.core.errors import GenerationFailed, UsageError
from sogni_cli.jobs import JOB_FIELDS, agent_body, build_job, parse_lora, workflow_body
from tests.test_media_commands import FakeAPI, _wav, png_bytes


def test_job_fields_cover_the_kinds_and_map_to_catalogue_parameters():
    from sogni_cli import catalog

    cat = catalog.load()
    assert set(JOB_FIELDS) == {"image", "edit", "video", "music", "speech", "tool"}
    tools = {"image": ["generate_image"], "edit": ["edit_image"], "music": ["generate_music"],
             "speech": ["generate_speech"], "video": ["generate_video"]}
    for kind, names in tools.items():
        for name in names:
            params = cat.get(name).params
            for fld, arg in JOB_FIELDS[kind].items():
                if arg is not None and fld != "seed":
                    assert arg in params, (kind, fld, arg)


def test_parse_lora():
    assert parse_lora("grain") == ("grain", None)
    assert parse_lora("grain:0.5") == ("grain", 0.5)
    assert parse_lora("ns:name") == ("ns:name", None)
    with pytest.raises(UsageError):
        parse_lora(":1")


def test_build_job_maps_fields_and_leaves_unset_out():
    job = build_job("speech", {"text": "hi", "voice": "eric", "format": None, "count": 2})
    assert job.tool == "generate_speech" and job.arguments == {"prompt": "hi", "voice": "eric",
                                                               "numberOfVariations": 2}
    assert job.prompt == "hi" and job.route == "workflow"


def test_build_job_reports_every_problem():
    with pytest.raises(UsageError) as ei:
        build_job("music", {"prompt": "x", "bpm": 1000, "time_signature": 5, "colour": "red",
                            "token_type": "gold", "max_cost": 0})
    msg = ei.value.message
    for word in ("bpm", "time_signature", "colour", "token type", "max cost"):
        assert word in msg


def test_build_job_media_inputs_and_indices(tmp_path):
    (tmp_path / "a.png").write_bytes(png_bytes())
    (tmp_path / "b.png").write_bytes(png_bytes())
    job = build_job("video", {"prompt": "p", "image": ["a.png"]}, base_dir=tmp_path)
    assert job.tool == "animate_photo" and job.arguments["sourceImageIndex"] == -1
    job = build_job("tool", {"name": "generate_video", "images": ["a.png", "b.png"], "args": {"prompt": "p"}},
                    base_dir=tmp_path)
    assert job.arguments["referenceImageIndices"] == [-1, -2]
    assert [i.ref_id for i in job.inputs] == ["media_ref_1", "media_ref_2"]
    refs = [{"id": "media_ref_1", "url": "https://x"}, {"id": "media_ref_2", "url": "https://y"}]
    body = workflow_body(job, refs)
    assert body["media_references"] == refs
    (step,) = body["input"]["steps"]
    assert step["arguments"] == {"prompt": "p"}  # the uploads are bound, not indexed
    assert step["dependsOn"] == [
        {"sourceStepId": "$input_media", "sourceArtifactIndex": k, "targetArgument": "referenceImageIndices",
         "transform": "image_index", "mediaType": "image", "required": True} for k in (0, 1)]
    (tmp_path / "a.wav").write_bytes(_wav())
    with pytest.raises(UsageError, match="takes no audio input"):
        build_job("tool", {"name": "generate_image", "audio": ["a.wav"], "args": {"prompt": "p"}}, base_dir=tmp_path)


def test_user_index_argument_is_kept(tmp_path):
    (tmp_path / "a.png").write_bytes(png_bytes())
    job = build_job("edit", {"prompt": "p", "images": ["a.png"], "args": {"sourceImageIndex": 0}}, base_dir=tmp_path)
    assert job.arguments["sourceImageIndex"] == 0


def test_index_conventions_come_from_the_catalogue(tmp_path):
    """sound_to_video and video_to_video count their uploads from 0; every other tool from -1."""
    (tmp_path / "a.png").write_bytes(png_bytes())
    (tmp_path / "a.wav").write_bytes(_wav())
    job = build_job("video", {"prompt": "p", "image": ["a.png"], "audio": ["a.wav"], "duration": 5.0},
                    base_dir=tmp_path)
    assert job.tool == "sound_to_video"
    assert job.arguments["audioSourceIndex"] == 0 and job.arguments["sourceImageIndex"] == 0
    assert job.arguments["duration"] == 5 and isinstance(job.arguments["duration"], int)
    job = build_job("edit", {"prompt": "p", "images": ["a.png"]}, base_dir=tmp_path)
    assert job.arguments["sourceImageIndex"] == -1


def test_video_and_audio_together_is_an_error(tmp_path):
    with pytest.raises(UsageError, match="cannot be combined"):
        build_job("video", {"prompt": "p", "video": "v.mp4", "audio": "a.wav"}, base_dir=tmp_path)


def test_agent_body_for_default_and_rich_tools():
    job = build_job("image", {"prompt": "fox", "width": 64})
    body = agent_body(job)
    # flat names of the creative-agent family: the one spelling the brief and the SDK agree on
    assert body["tool_choice"]["function"]["name"] == "generate_image" and body["sogni_tools"] == "creative-agent"
    assert "media_references" not in body and "token_type" not in body
    job = build_job("tool", {"name": "apply_style", "args": {"prompt": "ink"}, "token_type": "spark"})
    body = agent_body(job)
    assert body["tool_choice"]["function"]["name"] == "apply_style" and body["sogni_tools"] == "creative-agent"
    assert body["token_type"] == "spark"


def test_run_media_job_concurrently_in_threads(httpx_mock, tmp_path):
    """Several jobs at once (the recipe runner's use): each its own workflow, files and progress key."""
    from sogni_cli.api.client import ApiClient, ClientConfig
    from sogni_cli.jobs.pipeline import PipelineOptions, run_media_job
    from sogni_cli.core.progress import ProgressSink

    api = FakeAPI(httpx_mock)
    keys: list = []
    lock = threading.Lock()

    class Rec(ProgressSink):
        def start(self, key, total, label):
            with lock:
                keys.append(key)

    results, errors = [], []
    client = ApiClient(ClientConfig(base_url="https://api.sogni.test", api_key="k-test-123456"))

    def worker(i: int) -> None:
        try:
            job = build_job("image", {"prompt": f"job {i}"})
            opts = PipelineOptions(output_dir=tmp_path / f"o{i}", progress_key=f"job{i}")
            results.append(run_media_job(client, job, opts, progress=Rec()))
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert errors == []
    assert sorted(str(r.saved[0].path.relative_to(tmp_path)) for r in results) == \
        [f"o{i}/job-{i}-1.png" for i in range(4)]
    assert sorted(k[0] for k in keys) == ["job0", "job1", "job2", "job3"]
    assert len(api.created) == 4


def test_run_media_job_raises_generation_failed(httpx_mock, tmp_path):
    from sogni_cli.api.client import ApiClient, ClientConfig
    from sogni_cli.jobs.pipeline import PipelineOptions, run_media_job

    api = FakeAPI(httpx_mock)
    api.artifacts = []
    client = ApiClient(ClientConfig(base_url="https://api.sogni.test", api_key="k-test-123456"))
    with pytest.raises(GenerationFailed):
        run_media_job(client, build_job("image", {"prompt": "x"}), PipelineOptions(output_dir=tmp_path))
