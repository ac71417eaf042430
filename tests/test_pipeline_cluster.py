"""What the cluster sees of the compiled pipeline: every task's pod meets Pod Security
`restricted`, has requests, limits and a time-out, latency pods are Guaranteed with
whole CPUs, and the package stays small because each stage kind is defined once."""
from __future__ import annotations

from pathlib import Path

import kubernetes_validate
import pytest
import yaml
from google.protobuf import json_format

from linas_lib.config import load_config
from pipelines.linas_pipeline import PackageTooLarge, compile_pipeline, latency_resources
from pipelines.placement import deployment
from pod_security import restricted_violations, task_pod

from conftest import ROOT

MULTI = ROOT / "pipelines" / "configs" / "cluster_multi_target.yaml"
KINDS = {"apply run parameters": "resolve", "sample initial population": "sample", "report": "report",
         "evaluate accuracy": "accuracy", "gather accuracy shards": "gather", "record and train predictors": "train",
         "search predictors (MOEA)": "moea"}


def _kind(display: str) -> str:
    what = display.split(": ", 1)[-1]
    return "latency" if what.startswith("latency on ") else KINDS[what]


def _load(path) -> tuple[dict, dict]:
    spec, platform = [d for d in yaml.safe_load_all(Path(path).read_text()) if d]
    return spec, platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]


def _leaf_tasks(spec):
    """(display name, executor label) of every container task in every DAG."""
    for dag in [spec["root"], *spec["components"].values()]:
        for task in dag.get("dag", {}).get("tasks", {}).values():
            label = spec["components"][task["componentRef"]["name"]].get("executorLabel")
            if label:
                yield task["taskInfo"]["name"], label


@pytest.fixture(scope="module")
def multi(tmp_path_factory):
    config = load_config(MULTI)
    path = tmp_path_factory.mktemp("multi") / "p.yaml"
    compile_pipeline(config, str(path))
    return config, path, *_load(path)


def test_the_package_is_a_valid_pipeline_and_platform_spec(multi):
    from kfp.pipeline_spec import pipeline_spec_pb2

    config, path, spec, platform = multi
    json_format.ParseDict(spec, pipeline_spec_pb2.PipelineSpec())
    json_format.ParseDict({"platforms": {"kubernetes": {"deploymentSpec": {"executors": platform}}}},
                          pipeline_spec_pb2.PlatformSpec())
    executors = spec["deploymentSpec"]["executors"]
    for display, label in _leaf_tasks(spec):
        assert label in executors, display
    for dag in [spec["root"], *spec["components"].values()]:
        for task in dag.get("dag", {}).get("tasks", {}).values():
            assert task["componentRef"]["name"] in spec["components"]


def test_every_task_pod_meets_the_restricted_profile_and_validates_strictly(multi):
    config, path, spec, platform = multi
    executors = spec["deploymentSpec"]["executors"]
    for display, label in _leaf_tasks(spec):
        pod = task_pod(executors[label]["container"], platform.get(label))
        assert restricted_violations(pod) == [], display
        security = pod["containers"][0]["securityContext"]
        assert security["runAsNonRoot"] is True and security["runAsUser"] == deployment(config).cluster.run_as_user
        assert {m["mountPath"] for m in pod["containers"][0]["volumeMounts"]} == {"/tmp"}  # writable /tmp
        kubernetes_validate.validate({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": label}, "spec": pod},
                                     "1.33", strict=True)


def test_without_the_pipelines_security_context_the_check_fails(multi):
    config, path, spec, platform = multi
    label = next(iter(spec["deploymentSpec"]["executors"]))
    bare = {k: v for k, v in platform[label].items() if k != "securityContext"}
    violations = restricted_violations(task_pod(spec["deploymentSpec"]["executors"][label]["container"], bare))
    assert any("runAsNonRoot" in v for v in violations)  # the backend does not set it for us


def test_every_task_has_requests_limits_and_its_kinds_timeout(multi):
    config, path, spec, platform = multi
    executors = spec["deploymentSpec"]["executors"]
    seen = set()
    for display, label in _leaf_tasks(spec):
        kind = _kind(display)
        seen.add(kind)
        resources = executors[label]["container"]["resources"]
        for key in ("resourceCpuRequest", "resourceCpuLimit", "resourceMemoryRequest", "resourceMemoryLimit"):
            assert key in resources, (display, key)
        assert int(platform[label]["activeDeadlineSeconds"]) == getattr(deployment(config).cluster.timeouts, kind), display
        if kind == "latency":  # Guaranteed QoS, whole CPUs
            assert resources["resourceCpuRequest"] == resources["resourceCpuLimit"]
            assert float(resources["cpuLimit"]).is_integer()
            assert resources["resourceMemoryRequest"] == resources["resourceMemoryLimit"]
    assert seen == set(KINDS.values()) | {"latency"}


def test_store_tasks_carry_the_label_minio_admits_and_pure_tasks_do_not(multi):
    config, path, spec, platform = multi
    for display, label in _leaf_tasks(spec):
        labels = platform[label].get("podMetadata", {}).get("labels", {})
        uses_store = "secretAsEnv" in platform[label]
        assert (labels.get("linas.io/store-client") == "true") is uses_store, display
        assert uses_store is (_kind(display) not in ("resolve", "gather", "moea")), display


# ---- Guaranteed latency pods -------------------------------------------------------------------------
def _target(**resources):
    from linas_lib.config import TargetConfig
    from pipelines.placement import Placement

    return TargetConfig(name="t", threads=2), Placement(resources=resources)


def test_a_latency_target_without_resources_gets_whole_cpus_for_its_threads():
    r = latency_resources(*_target(), 0)
    assert (r.cpu_request, r.cpu_limit, r.memory_request, r.memory_limit) == ("2", "2", "2Gi", "2Gi")


@pytest.mark.parametrize("resources,message", [
    ({"cpu_request": "2", "cpu_limit": "2", "memory_request": "2Gi", "memory_limit": "4Gi"},
     "memory_request and memory_limit must be set and equal (got '2Gi', '4Gi')"),
    ({"cpu_request": "2", "memory_request": "2Gi", "memory_limit": "2Gi"},
     "cpu_request and cpu_limit must be set and equal (got '2', None)"),
    ({"cpu_request": "1500m", "cpu_limit": "1500m", "memory_request": "2Gi", "memory_limit": "2Gi"},
     "cpu_limit must be a whole number of CPUs (got '1500m')"),
    ({"cpu_request": "1", "cpu_limit": "1", "memory_request": "2Gi", "memory_limit": "2Gi"},
     "cpu_limit (1) is below threads (2)"),
])
def test_compile_refuses_a_latency_target_that_is_not_guaranteed(resources, message, tmp_path):
    config = load_config(MULTI)
    targets = [t.model_dump() for t in config.targets]
    targets[1]["placement"]["resources"] = resources
    targets[1]["threads"] = 2
    bad = config.with_overrides(targets=targets)
    with pytest.raises(ValueError) as info:
        compile_pipeline(bad, str(tmp_path / "p.yaml"))
    assert "targets[1] (cpu-ov-fp32).placement.resources: a latency pod must be Guaranteed QoS" in str(info.value)
    assert message in str(info.value)
    assert not (tmp_path / "p.yaml").exists()


# ---- size: one definition per stage kind ---------------------------------------------------------------
@pytest.mark.parametrize("evaluations,iterations,limit_kib", [(480, 20, 256), (1200, 50, 512)])
def test_real_placements_compile_small_with_one_definition_per_stage_kind(evaluations, iterations, limit_kib,
                                                                          tmp_path):
    config = load_config(MULTI).with_overrides(**{"search.evaluations": evaluations})
    assert config.search.iterations == iterations and len(config.targets) == 3
    path = tmp_path / "big.yaml"
    compile_pipeline(config, str(path))
    size_kib = path.stat().st_size / 1024
    assert size_kib <= limit_kib, f"{iterations} x 3 targets: {size_kib:.0f} KiB"
    spec, platform = _load(path)
    # resolve, sample, accuracy, gather, train, moea, report and one latency per target
    assert len(spec["deploymentSpec"]["executors"]) == 7 + 3
    leaf = [c for c in spec["components"].values() if "executorLabel" in c]
    assert len(leaf) == 7 + 3
    assert sum(1 for _ in _leaf_tasks(spec)) == 7 * iterations + 2  # yet every task is still there


def test_compile_fails_above_the_package_limit(tmp_path):
    config = load_config(MULTI).with_overrides(**{"cluster.max_package_kib": 64})
    with pytest.raises(PackageTooLarge, match=r"KiB, above cluster.max_package_kib \(64\)"):
        compile_pipeline(config, str(tmp_path / "p.yaml"))
    assert not (tmp_path / "p.yaml").exists()


def test_s3_secure_reaches_every_store_task(tmp_path):
    config = load_config(MULTI).with_overrides(**{"cluster.s3_secure": True})
    path = tmp_path / "tls.yaml"
    compile_pipeline(config, str(path))
    spec, platform = _load(path)
    executors = spec["deploymentSpec"]["executors"]
    for display, label in _leaf_tasks(spec):
        env = {e["name"]: e["value"] for e in executors[label]["container"].get("env", [])}
        if "secretAsEnv" in platform[label]:
            assert env["LINAS_S3_SECURE"] == "true", display
