"""The Kubernetes side of the pipeline: compiled IR and platform spec, run
parameters, submission and schedules against a local KFP API, and the preflight
against a local Kubernetes API serving /api/v1/nodes."""
from __future__ import annotations

import json
import threading
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import yaml

from components.images import image
from kfp_server import kfp_server
from linas_lib.config import config_from_dict
from linas_lib.stages import RUN_PARAMETERS, resolve_config, run_parameter_defaults
from pipelines.cluster import PreflightError, check_placements, preflight
from pipelines.linas_pipeline import compile_pipeline
from pipelines.submit import SubmitError, schedule_run, submit_run, validate_cron

CLUSTER_CONFIG = {
    "name": "k8s",
    "search": {"population": 10, "evaluations": 30},
    "targets": [
        {"name": "cpu-pool", "backend": "onnxruntime", "threads": 1, "placement": {
            "node_selector": {"linas.io/pool": "cpu"},
            "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "latency", "effect": "NoSchedule"}],
            "resources": {"cpu_request": "2", "cpu_limit": "2", "memory_request": "4Gi", "memory_limit": "4Gi"}}},
        {"name": "cpu-batch", "backend": "onnxruntime", "threads": 4, "batch_size": 64, "placement": {
            "node_selector": {"linas.io/pool": "cpu-large"},
            "resources": {"cpu_request": "4", "cpu_limit": "4", "memory_request": "4Gi", "memory_limit": "4Gi"}}},
    ],
    "cluster": {
        "accuracy": {"node_selector": {"linas.io/pool": "gpu"}, "shards": 3,
                     "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
                     "resources": {"gpu": 1, "memory_request": "8Gi"}},
        "store_secret": "linas-minio", "s3_endpoint": "minio.linas:9000", "retries": 3,
    },
}


@pytest.fixture(scope="module")
def compiled(tmp_path_factory):
    config = config_from_dict(CLUSTER_CONFIG)
    path = tmp_path_factory.mktemp("ir") / "pipeline.yaml"
    compile_pipeline(config, str(path))
    spec, platform = list(yaml.safe_load_all(path.read_text()))
    return config, spec, platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]


def _tasks(spec):
    """Every task of every DAG: name -> (task, component)."""
    found = {}
    for comp in [spec["root"], *spec["components"].values()]:
        for name, task in comp.get("dag", {}).get("tasks", {}).items():
            found[name] = task
    return found


def _executor_of(spec, task):
    return spec["components"][task["componentRef"]["name"]].get("executorLabel")


def test_latency_tasks_carry_their_target_placement(compiled):
    config, spec, platform = compiled
    by_display = {t["taskInfo"]["name"]: t for t in _tasks(spec).values()}
    pool = platform[_executor_of(spec, by_display["iter 0: latency on cpu-pool"])]
    assert pool["nodeSelector"]["labels"] == {"linas.io/pool": "cpu"}
    assert pool["tolerations"] == [{"key": "dedicated", "operator": "Equal", "value": "latency", "effect": "NoSchedule"}]
    batch = platform[_executor_of(spec, by_display["iter 2: latency on cpu-batch"])]
    assert batch["nodeSelector"]["labels"] == {"linas.io/pool": "cpu-large"}
    resources = spec["deploymentSpec"]["executors"][_executor_of(spec, by_display["iter 0: latency on cpu-pool"])][
        "container"]["resources"]
    assert resources["cpuRequest"] == 2 and resources["cpuLimit"] == 2
    assert resources["memoryRequest"] == resources["memoryLimit"] == pytest.approx(4 * 1.073741824)


def test_accuracy_is_sharded_on_gpu_nodes(compiled):
    config, spec, platform = compiled
    accuracy = [t for t in _tasks(spec).values() if t["taskInfo"]["name"] == "iter 0: evaluate accuracy"]
    assert len(accuracy) == 1
    executor = spec["deploymentSpec"]["executors"][_executor_of(spec, accuracy[0])]["container"]
    assert executor["resources"]["accelerator"]["resourceType"] == "nvidia.com/gpu"
    assert executor["resources"]["accelerator"]["resourceCount"] == "1"
    assert executor["image"] == image("cuda")
    place = platform[_executor_of(spec, accuracy[0])]
    assert place["nodeSelector"]["labels"] == {"linas.io/pool": "gpu"}
    assert place["tolerations"][0]["key"] == "nvidia.com/gpu"
    loops = [t for t in _tasks(spec).values() if "parameterIterator" in t]
    assert len(loops) == config.search.iterations
    assert json.loads(loops[0]["parameterIterator"]["items"]["raw"]) == [0, 1, 2]
    gathers = [t for t in _tasks(spec).values() if t["taskInfo"]["name"].endswith("gather accuracy shards")]
    assert len(gathers) == config.search.iterations


def test_store_credentials_come_from_a_secret_and_never_appear_in_the_yaml(compiled, tmp_path):
    config, spec, platform = compiled
    by_display = {t["taskInfo"]["name"]: t for t in _tasks(spec).values()}
    # the store holds the run and the evaluation cache: the tasks that read or write them get the keys
    for name in ("iter 0: record and train predictors", "report", "sample initial population",
                 "iter 0: latency on cpu-pool", "iter 0: evaluate accuracy"):
        env = platform[_executor_of(spec, by_display[name])]["secretAsEnv"][0]
        assert env["secretName"] == "linas-minio"
        assert {m["envVar"] for m in env["keyToEnv"]} == {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}
    for name in ("iter 1: search predictors (MOEA)", "apply run parameters"):
        pure = platform.get(_executor_of(spec, by_display[name]), {})
        assert "secretAsEnv" not in pure  # least privilege: steps that never touch the store never see its keys
    text = yaml.safe_dump(spec) + yaml.safe_dump(platform)
    assert "AWS_SECRET_ACCESS_KEY" in text and "secretkey" in text  # names only...
    assert "linas-test-secret" not in text  # ...never values


def test_retries_caching_and_display_names(compiled):
    config, spec, platform = compiled
    tasks = _tasks(spec)
    runnable = [t for t in tasks.values() if "componentRef" in t and _executor_of(spec, t)]
    assert runnable
    for task in runnable:
        if task["taskInfo"]["name"] == "apply run parameters":
            assert "retryPolicy" not in task  # deterministic validation: retrying only delays the message
        else:
            assert task["retryPolicy"]["maxRetryCount"] == 3, task["taskInfo"]["name"]
        assert task["taskInfo"]["name"][0].isalpha()
        measuring = "latency" in task["taskInfo"]["name"] or "evaluate accuracy" in task["taskInfo"]["name"]
        cached = task.get("cachingOptions", {}).get("enableCache", False)
        reads_store_state = task["taskInfo"]["name"] in ("report", "sample initial population")
        assert cached is (not measuring and not reads_store_state), task["taskInfo"]["name"]


def test_iterations_nest_under_the_go_on_flag_and_the_report_is_the_exit_task(compiled):
    config, spec, platform = compiled
    conditions = [c for name, c in spec["components"].items() if name.startswith("comp-condition")]
    assert len(conditions) == config.search.iterations - 1
    tasks = _tasks(spec)
    triggers = [t["triggerPolicy"]["condition"] for t in tasks.values() if "triggerPolicy" in t
                and "condition" in t["triggerPolicy"]]
    assert len(triggers) == config.search.iterations - 1
    assert all("train-predictors" in c and "== true" in c for c in triggers)
    root = spec["root"]["dag"]["tasks"]
    assert root["report"]["triggerPolicy"]["strategy"] == "ALL_UPSTREAM_TASKS_COMPLETED"


def test_run_parameters_are_exposed_and_applied():
    config = config_from_dict(CLUSTER_CONFIG)
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "p.yaml"
        compile_pipeline(config, str(path))
        spec = next(yaml.safe_load_all(path.read_text()))
    params = spec["root"]["inputDefinitions"]["parameters"]
    assert set(params) == {"store_uri", "checkpoint", "config_json", "overrides"}
    # the run parameters travel as one JSON object whose defaults are the compiled config's
    assert params["overrides"]["parameterType"] == "STRUCT"
    assert params["overrides"]["defaultValue"] == run_parameter_defaults(config) == {
        "seed": config.seed, "max_iterations": 3, "population": 10, "inner_evaluations": config.search.inner.evaluations,
        "early_stop_threshold": config.search.early_stop.threshold, "early_stop_window": config.search.early_stop.window}
    assert set(RUN_PARAMETERS) == set(params["overrides"]["defaultValue"])

    def resolve(**overrides):
        return resolve_config(config.to_json(), 3, overrides)

    resolved = config_from_dict(json.loads(resolve(seed=7, max_iterations=2, population=12, inner_evaluations=500,
                                                   early_stop_threshold=0.01, early_stop_window=1)))
    assert resolved.seed == 7 and resolved.search.population == 12 and resolved.search.inner.evaluations == 500
    assert resolved.search.iterations == 2 and resolved.search.early_stop.threshold == 0.01
    assert config_from_dict(json.loads(resolve(seed=7.0))).seed == 7  # KFP's JSON numbers are doubles
    with pytest.raises(ValueError, match=r"max_iterations: must be 1..3 \(the iterations this pipeline"):
        resolve(max_iterations=5)
    with pytest.raises(ValueError, match=r"max_iterations: must be 1..3"):
        resolve(max_iterations=0)  # 0 is not "all"
    # the budget is kept: population 5 needs 6 iterations for 30 evaluations, the graph has 3
    with pytest.raises(ValueError, match=r"population: 5 needs 6 iterations .* use population >= 10"):
        resolve(population=5)
    with pytest.raises(ValueError, match=r"populaton: not a run parameter; allowed: seed, max_iterations"):
        resolve(populaton=5)
    with pytest.raises(ValueError, match=r"seed=2.5: expected an integer, got float"):
        resolve(seed=2.5)
    bigger = config_from_dict(json.loads(resolve(population=15)))
    assert bigger.search.plan() == [15, 15]  # a larger population spends the same budget in fewer


# ---- submission and schedules -------------------------------------------------
def test_submit_creates_the_experiment_once_and_a_run_with_the_pipeline_spec():
    config = config_from_dict(CLUSTER_CONFIG)
    with kfp_server() as (fake, host):
        first = submit_run(config, host, experiment="nas", arguments={"seed": 3, "store_uri": "s3://linas/runs/a"})
        second = submit_run(config.with_overrides(store="s3://linas/runs/k8s"), host, experiment="nas")
    posts = [(p.split("?")[0], b) for m, p, b in fake.requests if m == "POST"]
    assert [p for p, _ in posts] == ["/apis/v2beta1/experiments", "/apis/v2beta1/runs", "/apis/v2beta1/runs"]
    assert posts[0][1]["display_name"] == "nas"
    run = posts[1][1]
    assert run["experiment_id"] == first.experiment_id == second.experiment_id
    assert run["pipeline_spec"]["pipeline_spec"]["pipelineInfo"]["name"] == "linas-k8s"
    # the kfp-kubernetes platform spec (node selectors, secrets) travels with the run
    assert "kubernetes" in run["pipeline_spec"]["platform_spec"]["platforms"]
    sent = run["runtime_config"]["parameters"]
    assert sent == {"store_uri": "s3://linas/runs/a", "overrides": {**run_parameter_defaults(config), "seed": 3}}
    assert fake.runs[1]["runtime_config"]["parameters"] == {}  # nothing given, nothing sent: the compiled defaults
    assert first.id == fake.runs[0]["run_id"]
    # every run executes as the runner service account of manifests/runner
    assert {r["service_account"] for r in fake.runs} == {"linas-pipeline-runner"}


@pytest.mark.parametrize("arguments,message", [
    ({"populaton": 5}, "--param populaton: not a parameter of this pipeline; allowed: checkpoint, config_json, "
                       "early_stop_threshold"),
    ({"population": "abc"}, "--param population='abc': expected an integer, got str"),
    ({"population": True}, "--param population=True: expected an integer, got bool"),
    ({"overrides": {"populaton": 5}}, "--param populaton: not a run parameter; allowed: seed"),
    ({"store_uri": "relative/x"}, "--param store_uri='relative/x': a run on the cluster needs an s3://BUCKET/PREFIX"),
    ({"store_uri": "s3://linas"}, "needs an s3://BUCKET/PREFIX"),
    ({"max_iterations": 0}, "max_iterations: must be 1..3"),
    ({"max_iterations": 4}, "max_iterations: must be 1..3"),
    ({"population": 5}, "population: 5 needs 6 iterations to spend the budget of 30 evaluations"),
    ({"early_stop_window": 0}, "search.early_stop.window"),
    ({"early_stop_threshold": float("nan")}, "must be a finite number"),
    ({"seed": -1}, "seed"),
    ({}, "needs an s3://BUCKET/PREFIX"),  # no store at all: tasks would each write inside their own pod
])
def test_submit_refuses_bad_parameters_before_sending_anything(arguments, message):
    config = config_from_dict(CLUSTER_CONFIG)
    arguments = {"store_uri": "s3://linas/runs/k8s", **arguments} if arguments != {} else {}
    with kfp_server() as (fake, host):
        with pytest.raises(SubmitError) as info:
            submit_run(config, host, arguments=arguments)
    assert message in str(info.value)
    assert not fake.requests  # refused before the endpoint was even asked


def test_schedule_refuses_concurrent_runs_on_one_store():
    with pytest.raises(SubmitError, match="--max-concurrency 2: must be 1; the runs of a schedule share store_uri"):
        schedule_run(config_from_dict(CLUSTER_CONFIG), "http://127.0.0.1:9", cron="0 0 3 * * 1", max_concurrency=2)


def test_schedule_refuses_bad_parameters_too():
    with kfp_server() as (fake, host):
        with pytest.raises(SubmitError, match="max_iterations: must be 1..3"):
            schedule_run(config_from_dict(CLUSTER_CONFIG), host, cron="0 0 3 * * 1",
                         arguments={"store_uri": "s3://linas/runs/k8s", "max_iterations": 0})
    assert not fake.requests


def test_cli_submit_refuses_a_misspelt_parameter(capsys, tmp_path):
    from linas_lib.cli import main

    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(CLUSTER_CONFIG))
    with kfp_server() as (fake, host):
        code = main(["pipeline", "submit", str(path), "--host", host, "--skip-preflight", "--store",
                     "s3://linas/runs/x", "--param", "populaton=5", "--param", "population=abc"])
    assert code == 1 and not fake.runs
    assert "--param populaton: not a parameter of this pipeline" in capsys.readouterr().err


def test_schedule_creates_a_recurring_run_with_cron_and_max_concurrency():
    config = config_from_dict(CLUSTER_CONFIG)
    with kfp_server() as (fake, host):
        job = schedule_run(config, host, cron="0 0 3 * * 1", max_concurrency=1, experiment="nightly",
                           arguments={"store_uri": "s3://linas/runs/nightly"})
    body = fake.recurring_runs[0]
    assert body["trigger"]["cron_schedule"]["cron"] == "0 0 3 * * 1"
    assert int(body["max_concurrency"]) == 1
    assert body["service_account"] == "linas-pipeline-runner"
    assert "seed" in body["pipeline_spec"]["pipeline_spec"]["root"]["inputDefinitions"]["parameters"]["overrides"]["defaultValue"]
    assert job.id == body["recurring_run_id"]


@pytest.mark.parametrize("cron", ["0 0 3 * * 1", "0 */15 * * * *", "30 0 9-17/2 ? JAN-MAR mon,Wed,FRI",
                                  "0 0 0 1,15 * ?", "5/10 * * * * *", "@daily", "@every 6h"])
def test_cron_accepts_what_kfps_scheduler_parses(cron):
    assert validate_cron(cron) == cron


@pytest.mark.parametrize("cron,message", [
    ("0 3 * * 1", "6 fields, seconds first"),
    ("a b c d e f", "seconds: 'a' is not a number (0-59)"),
    ("60 0 3 * * 1", "seconds: 60 is outside 0-59"),
    ("0 0 24 * * *", "hours: 24 is outside 0-23"),
    ("0 0 3 0 * *", "day of month: 0 is outside 1-31"),
    ("0 0 3 * 13 *", "month: 13 is outside 1-12"),
    ("0 0 3 * * 7", "day of week: 7 is outside 0-6"),
    ("0 0 3 * * MOON", "day of week: 'MOON' is not a number (0-6 or SUN/MON"),
    ("0 0 5-3 * * *", "hours: range '5-3' ends before it starts"),
    ("0 */0 * * * *", "minutes: step '0' must be a positive number"),
    ("0 0 3 L * *", "day of month: 'L' is not a number"),  # Quartz, not robfig
    ("0 0 1,,2 * * *", "hours: empty list item"),
])
def test_cron_refuses_what_kfps_scheduler_would(cron, message):
    with pytest.raises(SubmitError) as info:
        validate_cron(cron)
    assert message in str(info.value)


def test_bad_cron_and_unreachable_endpoint_are_clear_errors():
    config = config_from_dict({**CLUSTER_CONFIG, "store": "s3://linas/runs/k8s"})
    with pytest.raises(SubmitError, match="6 fields, seconds first"):
        schedule_run(config, "http://127.0.0.1:9", cron="0 3 * * 1")
    with pytest.raises(SubmitError, match="cannot reach Kubeflow Pipelines"):
        submit_run(config, "http://127.0.0.1:9")


def test_cli_submit_with_skip_preflight(capsys, tmp_path):
    from linas_lib.cli import main

    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(CLUSTER_CONFIG))
    with kfp_server() as (fake, host):
        assert main(["pipeline", "submit", str(path), "--host", host, "--skip-preflight",
                     "--param", "seed=5", "--store", "s3://linas/runs/x"]) == 0
    sent = fake.runs[0]["runtime_config"]["parameters"]
    assert sent["store_uri"] == "s3://linas/runs/x" and sent["overrides"]["seed"] == 5
    assert "submitted run" in capsys.readouterr().out


# ---- preflight against a local Kubernetes API ----------------------------------
def node(name, labels, allocatable, taints=(), ready=True, unschedulable=False):
    return {
        "metadata": {"name": name, "labels": labels},
        "spec": {"taints": list(taints), "unschedulable": unschedulable},
        "status": {"allocatable": allocatable, "conditions": [{"type": "Ready", "status": "True" if ready else "False"}]},
    }


NODES = [
    node("gpu-1", {"linas.io/pool": "gpu", "nvidia.com/gpu.product": "NVIDIA-H100-80GB",
                   "node.kubernetes.io/instance-type": "a3-highgpu-1g"},
         {"cpu": "12", "memory": "85Gi", "nvidia.com/gpu": "1"},
         taints=[{"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}]),
    node("cpu-1", {"linas.io/pool": "cpu", "node.kubernetes.io/instance-type": "c3-standard-4",
                   "feature.node.kubernetes.io/cpu-model.id": "143"},
         {"cpu": "4", "memory": "16Gi"}, taints=[{"key": "dedicated", "value": "latency", "effect": "NoSchedule"}]),
    node("cpu-large-1", {"linas.io/pool": "cpu-large"}, {"cpu": "2", "memory": "8Gi"}),  # too few CPUs
    node("cpu-large-2", {"linas.io/pool": "cpu-large"}, {"cpu": "16", "memory": "64Gi"}, unschedulable=True),
]


@contextmanager
def kube_api(nodes):
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            if self.path.split("?")[0] != "/api/v1/nodes":
                self.send_response(404)
                self.end_headers()
                return
            data = json.dumps({"kind": "NodeList", "apiVersion": "v1", "metadata": {}, "items": nodes}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def kubeconfig(tmp_path, server: str) -> str:
    path = tmp_path / "kubeconfig"
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "test",
        "clusters": [{"name": "test", "cluster": {"server": server}}],
        "users": [{"name": "test", "user": {"token": "test-token"}}],
        "contexts": [{"name": "test", "context": {"cluster": "test", "user": "test"}}],
    }))
    return str(path)


def test_preflight_names_the_target_no_node_can_run(tmp_path):
    config = config_from_dict(CLUSTER_CONFIG)
    with kube_api(NODES) as server:
        with pytest.raises(PreflightError) as info:
            preflight(config, kubeconfig(tmp_path, server))
    message = str(info.value)
    assert "target cpu-batch" in message
    assert "cpu-large-1: allocatable cpu 2 < requested 4" in message
    assert "cpu-large-2: cordoned" in message
    assert "target cpu-pool" not in message and "accuracy" not in message


def test_preflight_passes_and_reads_hardware_labels(tmp_path):
    nodes = NODES + [node("cpu-large-3", {"linas.io/pool": "cpu-large",
                                          "node.kubernetes.io/instance-type": "c3-standard-22"},
                          {"cpu": "22", "memory": "88Gi"})]
    config = config_from_dict(CLUSTER_CONFIG)
    with kube_api(nodes) as server:
        checks = {c.name: c for c in preflight(config, kubeconfig(tmp_path, server))}
    assert checks["accuracy"].nodes == ["gpu-1"]
    assert checks["accuracy"].fingerprint == {"gpu_product": "NVIDIA-H100-80GB", "instance_type": "a3-highgpu-1g"}
    assert checks["target cpu-pool"].fingerprint == {"instance_type": "c3-standard-4", "cpu_model": "143"}
    assert checks["target cpu-batch"].nodes == ["cpu-large-3"]


def test_untolerated_taint_and_missing_gpu_are_reasons():
    accuracy = {**CLUSTER_CONFIG["cluster"]["accuracy"], "resources": {"gpu": 2}}
    config = config_from_dict({**CLUSTER_CONFIG, "cluster": {"accuracy": accuracy}})
    checks = {c.name: c for c in check_placements(config, NODES)}
    assert "nvidia.com/gpu 1 < requested 2" in checks["accuracy"].reasons["gpu-1"]
    assert "label linas.io/pool=gpu missing" in checks["accuracy"].reasons["cpu-1"]
    assert "taint dedicated=latency:NoSchedule not tolerated" in checks["target cpu-batch"].reasons["cpu-1"] \
        or "label linas.io/pool=cpu-large missing" in checks["target cpu-batch"].reasons["cpu-1"]
    untolerant = config_from_dict({**CLUSTER_CONFIG, "cluster": {"accuracy": {"node_selector": {"linas.io/pool": "gpu"}}}})
    reasons = {c.name: c for c in check_placements(untolerant, NODES)}["accuracy"].reasons
    assert reasons["gpu-1"] == "taint nvidia.com/gpu=present:NoSchedule not tolerated"


def test_cli_submit_runs_the_preflight_first(tmp_path, capsys):
    from linas_lib.cli import main

    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(CLUSTER_CONFIG))
    with kube_api(NODES) as server, kfp_server() as (fake, host):
        code = main(["pipeline", "submit", str(path), "--host", host, "--kubeconfig", kubeconfig(tmp_path, server)])
    assert code == 1
    assert "would stay Pending" in capsys.readouterr().err
    assert not fake.runs  # nothing was submitted
