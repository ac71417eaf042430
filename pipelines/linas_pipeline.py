"""The LINAS pipeline, built from a config.

KFP v2 has no loop with a dynamic end and no recursion, so the LINAS iterations
are unrolled at compile time (the config's evaluation budget fixes how many).
Each iteration after the first sits inside a `dsl.If` on the previous iteration's
"go on" flag, so a run stops early (budget from run parameters, or hypervolume
stagnation); the report is the ExitHandler's exit task and reads the store.

Per iteration: accuracy on GPU nodes, sharded over parallel pods; latency with one
task per hardware target, each pinned to its node pool; predictor training; the
MOEA. Kubernetes placement comes from `kfp-kubernetes` and is ignored by kfp.local.
"""
import contextlib
import sys
from pathlib import Path

import yaml
from kfp import dsl, kubernetes

from components import stages
from components.images import image
from linas_lib.backends import backend_image_role
from linas_lib.config import LinasConfig, TargetConfig
from linas_lib.stages import run_parameter_defaults
from pipelines.placement import ENV_LEASE_TTL, ClusterConfig, Deployment, Placement, Resources, deployment

# The label MinIO's NetworkPolicy admits (manifests/base/networkpolicy.yaml).
STORE_CLIENT_LABEL = ("linas.io/store-client", "true")
# The run's id, resolved by KFP (and kfp.local) per run: the holder of the store's
# one-writer lease (linas_lib.lease).
RUN_ID = dsl.PIPELINE_JOB_ID_PLACEHOLDER


def _image(cluster: ClusterConfig, role: str) -> str:
    return cluster.images.get(role) or image(role)


def _quantity(value: str):
    from kubernetes.utils.quantity import parse_quantity

    return parse_quantity(value)


def _filled(given: Resources, default: Resources) -> Resources:
    """Every request and limit set: the given ones, the rest from `default` (a limit
    never below its request)."""
    values = {}
    for kind in ("cpu", "memory"):
        request = getattr(given, f"{kind}_request") or getattr(default, f"{kind}_request")
        limit = getattr(given, f"{kind}_limit") or getattr(default, f"{kind}_limit")
        if _quantity(limit) < _quantity(request):
            limit = request
        values.update({f"{kind}_request": request, f"{kind}_limit": limit})
    return given.model_copy(update=values)


def latency_resources(target: TargetConfig, placement: Placement, index: int) -> Resources:
    """A latency pod is Guaranteed QoS with whole CPUs, so the kubelet's static CPU
    manager gives it exclusive cores: on a shared, throttled core a latency is noise.
    A target without resources gets `threads` CPUs and 2Gi; one with resources must
    already be Guaranteed, or compiling fails naming the fields."""
    r = placement.resources
    if not any((r.cpu_request, r.cpu_limit, r.memory_request, r.memory_limit)):
        cpus = str(target.threads)
        return r.model_copy(update=dict(cpu_request=cpus, cpu_limit=cpus, memory_request="2Gi", memory_limit="2Gi"))
    where = f"targets[{index}] ({target.name}).placement.resources"
    problems = []
    if not (r.cpu_request and r.cpu_limit and _quantity(r.cpu_request) == _quantity(r.cpu_limit)):
        problems.append(f"cpu_request and cpu_limit must be set and equal (got {r.cpu_request!r}, {r.cpu_limit!r})")
    elif _quantity(r.cpu_limit) % 1 != 0:
        problems.append(f"cpu_limit must be a whole number of CPUs (got {r.cpu_limit!r})")
    elif _quantity(r.cpu_limit) < target.threads:
        problems.append(f"cpu_limit ({r.cpu_limit}) is below threads ({target.threads}): the threads would share cores")
    if not (r.memory_request and r.memory_limit and _quantity(r.memory_request) == _quantity(r.memory_limit)):
        problems.append(f"memory_request and memory_limit must be set and equal "
                        f"(got {r.memory_request!r}, {r.memory_limit!r})")
    if problems:
        raise ValueError(f"{where}: a latency pod must be Guaranteed QoS with whole CPUs; " + "; ".join(problems))
    return r


def _resources(task, r: Resources):
    for setter, value in ((task.set_cpu_request, r.cpu_request), (task.set_cpu_limit, r.cpu_limit),
                          (task.set_memory_request, r.memory_request), (task.set_memory_limit, r.memory_limit)):
        if value:
            setter(value)
    if r.gpu:
        task.set_accelerator_type("nvidia.com/gpu")
        task.set_accelerator_limit(r.gpu)
    return task


def _place(task, placement: Placement, resources: Resources):
    for key, value in placement.node_selector.items():
        kubernetes.add_node_selector(task, label_key=key, label_value=value)
    for t in placement.tolerations:
        kubernetes.add_toleration(task, key=t.key, operator=t.operator, value=t.value, effect=t.effect)
    return _resources(task, resources)


def _common(task, placed: Deployment, name: str, kind: str, cache: bool, uses_store: bool = False):
    """What every task gets: name, caching, retries, Pod Security `restricted`
    settings, a writable /tmp, a pod time-out, and the store's keys where it uses it."""
    task.set_display_name(name)
    task.set_caching_options(cache)  # pure steps cache; measuring steps never do
    cluster = placed.cluster
    if kind != "resolve":  # validating run parameters is deterministic: a retry only delays the message
        task.set_retry(num_retries=cluster.retries, backoff_duration=cluster.retry_backoff, backoff_factor=2.0)
    # The KFP backend adds seccomp RuntimeDefault, no privilege escalation and drops all
    # capabilities; runAsNonRoot it leaves to the pipeline (user images may be root).
    kubernetes.set_security_context(task, run_as_user=cluster.run_as_user, run_as_group=cluster.run_as_group,
                                    run_as_non_root=True)
    # the executor, LINAS_CACHE and temporary exports write under /tmp
    kubernetes.empty_dir_mount(task, volume_name="tmp", mount_path="/tmp", size_limit=cluster.tmp_size_limit)
    kubernetes.set_timeout(task, getattr(cluster.timeouts, kind))
    if kind not in ("accuracy", "latency"):  # the tasks without a placement of their own
        _resources(task, getattr(cluster.resources, kind))
    if uses_store:
        if cluster.store_secret:
            kubernetes.use_secret_as_env(task, secret_name=cluster.store_secret, secret_key_to_env={
                "accesskey": "AWS_ACCESS_KEY_ID", "secretkey": "AWS_SECRET_ACCESS_KEY"})
        if cluster.integrity_secret:  # a Secret of its own: holding the store's credentials is not enough
            kubernetes.use_secret_as_env(task, secret_name=cluster.integrity_secret, secret_key_to_env={
                "integritykey": "LINAS_INTEGRITY_KEY"})
        if cluster.s3_endpoint:
            task.set_env_variable("LINAS_S3_ENDPOINT", cluster.s3_endpoint)
            task.set_env_variable("LINAS_S3_SECURE", str(cluster.s3_secure).lower())
        kubernetes.add_pod_label(task, *STORE_CLIENT_LABEL)
        task.set_env_variable(ENV_LEASE_TTL, str(placed.lease_ttl_s))
    return task


def _accuracy(placed: Deployment, it: int, config_json, checkpoint, store_uri, population):
    """Accuracy on GPU nodes; with K shards, K parallel pods whose outputs are gathered.

    It takes the compiled config rather than the resolved one: no run parameter
    changes how a sub-network is scored, and kfp.local mis-binds task outputs that
    enter a ParallelFor body (it hands them the loop item).
    """
    placement = placed.cluster.accuracy
    shards = placement.shards

    def task(shard):
        t = stages.evaluate_accuracy(config_json=config_json, checkpoint=checkpoint, store_uri=store_uri,
                                     shard=shard, shards=shards, population=population)
        _common(t, placed, f"iter {it}: evaluate accuracy", "accuracy", cache=False, uses_store=True)
        _place(t, placement, _filled(placement.resources, placed.cluster.resources.accuracy))
        return t.set_container_image(_image(placed.cluster, "cuda" if placement.resources.gpu else "base"))

    if shards == 1:  # no loop: keeps the unrolled graph small
        return task(0).outputs["accuracy"]
    with dsl.ParallelFor(items=list(range(shards)), parallelism=shards, name=f"accuracy-shards-{it}") as shard:
        sharded = task(shard)
    gathered = stages.gather_accuracy(shards=dsl.Collected(sharded.outputs["accuracy"]))
    return _common(gathered, placed, f"iter {it}: gather accuracy shards", "gather", cache=True).outputs["accuracy"]


def _iteration(config: LinasConfig, placed: Deployment, it: int, config_json, resolved, checkpoint, store_uri,
               population, history):
    """Add iteration `it` to the graph; returns its train task."""
    accuracy = _accuracy(placed, it, config_json, checkpoint, store_uri, population)
    latencies = {}
    for i, target in enumerate(config.latency_targets):
        task = stages.measure_latency(config_json=resolved, checkpoint=checkpoint, store_uri=store_uri,
                                      target=target.name, population=population)
        _common(task, placed, f"iter {it}: latency on {target.name}", "latency", cache=False, uses_store=True)
        placement = placed.placement(target)
        _place(task, placement, latency_resources(target, placement, i)).set_container_image(
            _image(placed.cluster, backend_image_role(target.backend, target.device)))
        latencies[f"latency_{i}"] = task.outputs["latency"]
    previous = {"history": history} if history is not None else {}
    return _common(stages.train_predictors(
        config_json=resolved, store_uri=store_uri, population=population,
        accuracy=accuracy, run_id=RUN_ID, **previous, **latencies,
    ), placed, f"iter {it}: record and train predictors", "train", cache=True, uses_store=True)


def _iterations(config: LinasConfig, placed: Deployment, config_json, resolved, checkpoint, store_uri,
                population) -> None:
    """Every iteration; each after the first nests inside `dsl.If(previous go on)`.

    A loop over an ExitStack rather than recursion: kfp calls inspect.stack() in every
    task setter, whose cost grows with the depth of the Python stack."""
    history = None
    with contextlib.ExitStack() as nested:
        for it in range(config.search.iterations):
            trained = _iteration(config, placed, it, config_json, resolved, checkpoint, store_uri, population, history)
            if it + 1 == config.search.iterations:
                return
            nested.enter_context(dsl.If(trained.outputs["Output"] == True, name=f"continue-after-{it}"))  # noqa: E712
            population = _common(stages.run_moea(
                config_json=resolved, iteration=it + 1, measurements=trained.outputs["measurements"],
                predictors=trained.outputs["predictors"],
            ), placed, f"iter {it + 1}: search predictors (MOEA)", "moea", cache=True).outputs["population"]
            history = trained.outputs["measurements"]


class _CallerName:
    """Stands in for `inspect` in kfp.dsl.pipeline_task while a pipeline is built.

    Every task setter calls `inspect.stack()[1][3]` there, only to name itself in a
    possible error message; a full stack reads source lines for each frame and scans
    sys.modules, about 20 ms a call in a large process, minutes for a 50-iteration graph.
    This gives the same name from the frame alone."""

    @staticmethod
    def stack():
        return [None, (None, None, None, sys._getframe(2).f_code.co_name)]


@contextlib.contextmanager
def _cheap_caller_names():
    from kfp.dsl import pipeline_task

    original = pipeline_task.inspect
    pipeline_task.inspect = _CallerName
    try:
        yield
    finally:
        pipeline_task.inspect = original


def build_pipeline(config: LinasConfig):
    with _cheap_caller_names():
        return _build_pipeline(config)


def _build_pipeline(config: LinasConfig):
    if config.search.mode == "validation":
        raise ValueError("search.mode: validation-only search runs in-process (`linas search`); "
                         "the pipeline runs the modes linas and oneshot")
    if len(config.targets) > stages.MAX_TARGETS:
        raise ValueError(f"targets: at most {stages.MAX_TARGETS} hardware targets per pipeline")
    placed = deployment(config)
    for i, target in enumerate(config.targets):  # refuse a non-Guaranteed latency pod before building
        latency_resources(target, placed.placement(target), i)
    iterations = config.search.iterations

    @dsl.pipeline(name=f"linas-{config.name}".lower().replace("_", "-").replace(".", "-"),
                  description=f"LINAS search '{config.name}': up to {iterations} iterations")
    def linas(
        store_uri: str = config.store or "",
        checkpoint: str = config.supernet.checkpoint or "",
        # the run parameters (linas_lib.stages.RUN_PARAMETERS), as one JSON object: edit any in the UI
        overrides: dict = run_parameter_defaults(config),
        config_json: str = config.to_json(),
    ):
        run_parameters = dict(config_json=config_json, compiled_iterations=iterations, overrides=overrides)
        # The report is the exit task: it runs after the last iteration that ran, early
        # stop or failure alike, and reads the run's measurements from the store.
        report = _common(stages.report(store_uri=store_uri, run_id=RUN_ID, **run_parameters), placed, "report",
                         "report", cache=False, uses_store=True)
        with dsl.ExitHandler(report, name="linas-iterations"):
            resolved = _common(stages.resolve_config(**run_parameters), placed, "apply run parameters",
                               "resolve", cache=True).output
            # never cached: a recurring run's population depends on the store's previous run
            sampled = _common(stages.sample(config_json=resolved, store_uri=store_uri,
                                            run_id=RUN_ID,
                                            run_name=dsl.PIPELINE_JOB_NAME_PLACEHOLDER), placed,
                              "sample initial population", "sample", cache=False, uses_store=True)
            _iterations(config, placed, config_json, resolved, checkpoint, store_uri, sampled.outputs["population"])

    return linas


class PackageTooLarge(ValueError):
    pass


# libyaml when present: a 50-iteration package is megabytes of YAML to read and write
_SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_SAFE_DUMPER = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


@contextlib.contextmanager
def _documents_kept():
    """The compiler's documents (pipeline spec, platform spec) kept as dicts instead of
    written with PyYAML's pure-Python dumper and read back: most of a large compile's
    time. The compiler still writes the header comments; should it stop calling
    `yaml.dump_all`, the list stays empty and the file is read as before."""
    from kfp.compiler import pipeline_spec_builder

    kept: list = []

    class _Keep:
        @staticmethod
        def dump_all(documents, stream=None, **_):
            kept.extend(d for d in documents if d)

    original = pipeline_spec_builder.yaml
    pipeline_spec_builder.yaml = _Keep
    try:
        yield kept
    finally:
        pipeline_spec_builder.yaml = original


def compile_pipeline(config: LinasConfig, package_path: str) -> str:
    """Compile, merge identical component definitions (pipelines.compact), and refuse
    a package above `cluster.max_package_kib`: Argo and etcd refuse a workflow around
    1-1.5 MiB, and a run that fails at submission is worse than a compile that fails."""
    from kfp import compiler

    from pipelines.compact import abbreviate_header, compact

    path = Path(package_path)
    path.parent.mkdir(parents=True, exist_ok=True)  # `-o build/x.yaml` on a fresh clone
    with _documents_kept() as kept:
        compiler.Compiler().compile(build_pipeline(config), str(path))
    text = path.read_text()
    header = abbreviate_header("".join(line for line in text.splitlines(keepends=True) if line.startswith("#")))
    documents = kept or [d for d in yaml.load_all(text, Loader=_SAFE_LOADER) if d]
    compact(documents[0], documents[1] if len(documents) > 1 else None)
    with path.open("w") as out:
        out.write(header)
        # flow style for mappings and lists of scalars only: still YAML, a sixth smaller
        yaml.dump_all(documents, out, Dumper=_SAFE_DUMPER, sort_keys=True, default_flow_style=None, width=120)
    max_kib = deployment(config).cluster.max_package_kib
    size, limit = path.stat().st_size, max_kib * 1024
    if size > limit:
        path.unlink()
        raise PackageTooLarge(
            f"the compiled pipeline is {size / 1024:.0f} KiB, above cluster.max_package_kib "
            f"({max_kib}): {config.search.iterations} iterations x {len(config.targets)} "
            "target(s) unrolled; use fewer iterations (a larger search.population or a smaller search.evaluations) "
            "or raise cluster.max_package_kib if your Argo and etcd accept larger workflows"
        )
    return package_path
