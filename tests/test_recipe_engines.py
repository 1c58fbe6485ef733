"""`--shard auto` and `SOGNI_SHARD`: the shard read where each batch engine puts it (0-based there, 1-based here)."""

from __future__ import annotations

import json

import pytest

RECIPE = """\
version: 1
name: eight
matrix:
  n: [1, 2, 3, 4, 5, 6, 7, 8]
jobs:
  - id: pic
    matrix: true
    image: {prompt: "picture {{ matrix.n }}", width: 512, height: 512}
"""

ENGINE_VARS = ("GITHUB_ACTIONS", "SOGNI_SHARD_INDEX", "SOGNI_SHARD_COUNT", "JOB_COMPLETION_INDEX",
               "AWS_BATCH_JOB_ARRAY_INDEX", "AWS_BATCH_JOB_ARRAY_SIZE", "CLOUD_RUN_TASK_INDEX",
               "CLOUD_RUN_TASK_COUNT", "SOGNI_SHARD")


@pytest.fixture
def clean_env(monkeypatch, tmp_cwd):
    for v in ENGINE_VARS:
        monkeypatch.delenv(v, raising=False)
    (tmp_cwd / "r.yaml").write_text(RECIPE)
    return monkeypatch


def _ids(res):
    assert res.exit_code == 0, res.stderr
    return [j["id"] for j in json.loads(res.stdout)["jobs"]]


@pytest.mark.parametrize("env, engine", [
    ({"GITHUB_ACTIONS": "true", "SOGNI_SHARD_INDEX": "1", "SOGNI_SHARD_COUNT": "3"}, "GitHub Actions"),
    ({"JOB_COMPLETION_INDEX": "1", "SOGNI_SHARD_COUNT": "3"}, "Kubernetes Indexed Job"),
    ({"AWS_BATCH_JOB_ARRAY_INDEX": "1", "AWS_BATCH_JOB_ARRAY_SIZE": "3"}, "AWS Batch array job"),
    ({"CLOUD_RUN_TASK_INDEX": "1", "CLOUD_RUN_TASK_COUNT": "3"}, "Cloud Run job"),
])
def test_auto_reads_each_engine_and_says_which(cli, clean_env, env, engine):
    explicit = _ids(cli("recipe", "plan", "r.yaml", "--json", "--shard", "2/3"))
    for k, v in env.items():
        clean_env.setenv(k, v)
    res = cli("recipe", "plan", "r.yaml", "--json", "--shard", "auto")
    assert _ids(res) == explicit  # engine index 1 of 3 is sogni's shard 2/3
    assert f"Shard 2/3 from {engine}" in res.stderr
    assert res.stdout.lstrip().startswith("{")  # the message is on stderr only


def test_kubernetes_count_from_shards_option(cli, clean_env):
    clean_env.setenv("JOB_COMPLETION_INDEX", "0")
    res = cli("recipe", "plan", "r.yaml", "--json", "--shard", "auto", "--shards", "2")
    assert _ids(res) == _ids(cli("recipe", "plan", "r.yaml", "--json", "--shard", "1/2"))
    assert "Shard 1/2 from Kubernetes Indexed Job (JOB_COMPLETION_INDEX=0, --shards 2)" in res.stderr


def test_kubernetes_without_count_is_refused(cli, clean_env):
    clean_env.setenv("JOB_COMPLETION_INDEX", "0")
    res = cli("recipe", "plan", "r.yaml", "--shard", "auto")
    assert res.exit_code == 2
    assert "not the count" in res.stderr and "SOGNI_SHARD_COUNT" in res.stderr


def test_sogni_shard_env(cli, clean_env):
    clean_env.setenv("SOGNI_SHARD", "3/4")
    assert _ids(cli("recipe", "plan", "r.yaml", "--json")) == _ids(
        cli("recipe", "plan", "r.yaml", "--json", "--shard", "3/4"))
    clean_env.setenv("SOGNI_SHARD", "auto")
    clean_env.setenv("CLOUD_RUN_TASK_INDEX", "0")
    clean_env.setenv("CLOUD_RUN_TASK_COUNT", "4")
    res = cli("recipe", "plan", "r.yaml", "--json")
    assert "Shard 1/4 from Cloud Run job" in res.stderr
    assert _ids(res) == _ids(cli("recipe", "plan", "r.yaml", "--json", "--shard", "1/4"))


@pytest.mark.parametrize("env, message", [
    ({}, "no batch engine found"),
    ({"CLOUD_RUN_TASK_INDEX": "4", "CLOUD_RUN_TASK_COUNT": "4"}, "index 4 is not below the count 4"),
    ({"AWS_BATCH_JOB_ARRAY_INDEX": "x", "AWS_BATCH_JOB_ARRAY_SIZE": "4"}, "is not a whole number"),
    ({"AWS_BATCH_JOB_ARRAY_INDEX": "1", "AWS_BATCH_JOB_ARRAY_SIZE": "4",
      "CLOUD_RUN_TASK_INDEX": "2", "CLOUD_RUN_TASK_COUNT": "4"}, "says shard 2/4"),
    ({"SOGNI_SHARD_INDEX": "0", "SOGNI_SHARD_COUNT": "2"}, "no batch engine found"),  # not on GitHub
])
def test_auto_refused(cli, clean_env, env, message):
    for k, v in env.items():
        clean_env.setenv(k, v)
    res = cli("recipe", "run", "r.yaml", "--shard", "auto", "-o", "out")
    assert res.exit_code == 2, res.stderr
    assert message in res.stderr
    assert res.stderr.startswith("Error: ")
    assert not (clean_env and __import__("pathlib").Path("out").exists())  # nothing was run


def test_two_engines_that_agree(cli, clean_env):
    for k, v in {"AWS_BATCH_JOB_ARRAY_INDEX": "2", "AWS_BATCH_JOB_ARRAY_SIZE": "4",
                 "CLOUD_RUN_TASK_INDEX": "2", "CLOUD_RUN_TASK_COUNT": "4"}.items():
        clean_env.setenv(k, v)
    res = cli("recipe", "plan", "r.yaml", "--json", "--shard", "auto")
    assert res.exit_code == 0 and "Shard 3/4 from AWS Batch array job" in res.stderr
    assert "Cloud Run job, which agree" in res.stderr
