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
from kfp import dsl, kubernetes

from components import stages
from components.images import image
from linas_lib.config import LinasConfig, Placement


def _image(config: LinasConfig, role: str) -> str:
    return config.cluster.images.get(role) or image(role)


def _place(task, placement: Placement):
    for key, value in placement.node_selector.items():
        kubernetes.add_node_selector(task, label_key=key, label_value=value)
    for t in placement.tolerations:
        kubernetes.add_toleration(task, key=t.key, operator=t.operator, value=t.value, effect=t.effect)
    r = placement.resources
    for setter, value in ((task.set_cpu_request, r.cpu_request), (task.set_cpu_limit, r.cpu_limit),
                          (task.set_memory_request, r.memory_request), (task.set_memory_limit, r.memory_limit)):
        if value:
            setter(value)
    if r.gpu:
        task.set_accelerator_type("nvidia.com/gpu")
        task.set_accelerator_limit(r.gpu)
    return task


def _common(task, config: LinasConfig, name: str, cache: bool, uses_store: bool = False):
    task.set_display_name(name)
    task.set_caching_options(cache)  # pure steps cache; measuring steps never do
    cluster = config.cluster
    task.set_retry(num_retries=cluster.retries, backoff_duration=cluster.retry_backoff, backoff_factor=2.0)
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
    return task


def _accuracy(config: LinasConfig, it: int, config_json, checkpoint, store_uri, population):
    """Accuracy on GPU nodes; with K shards, K parallel pods whose outputs are gathered.

    It takes the compiled config rather than the resolved one: no run parameter
    changes how a sub-network is scored, and kfp.local mis-binds task outputs that
    enter a ParallelFor body (it hands them the loop item).
    """
    placement = config.cluster.accuracy
    shards = placement.shards

    def task(shard):
        t = stages.evaluate_accuracy(config_json=config_json, checkpoint=checkpoint, store_uri=store_uri,
                                     shard=shard, shards=shards, population=population)
        _common(t, config, f"iter {it}: evaluate accuracy", cache=False, uses_store=True)
        return _place(t, placement).set_container_image(_image(config, "cuda" if placement.resources.gpu else "base"))

    if shards == 1:  # no loop: keeps the unrolled graph small
        return task(0).outputs["accuracy"]
    with dsl.ParallelFor(items=list(range(shards)), parallelism=shards, name=f"accuracy-shards-{it}") as shard:
        sharded = task(shard)
    gathered = stages.gather_accuracy(shards=dsl.Collected(sharded.outputs["accuracy"]))
    return _common(gathered, config, f"iter {it}: gather accuracy shards", cache=True).outputs["accuracy"]


def _iteration(config: LinasConfig, it: int, config_json, resolved, checkpoint, store_uri, population, history) -> None:
    """Add iteration `it` to the graph; the next one nests inside `dsl.If(go on)`."""
    accuracy = _accuracy(config, it, config_json, checkpoint, store_uri, population)
    latencies = {}
    for i, target in enumerate(config.latency_targets):
        task = stages.measure_latency(config_json=resolved, checkpoint=checkpoint, store_uri=store_uri,
                                      target=target.name, population=population)
        _common(task, config, f"iter {it}: latency on {target.name}", cache=False, uses_store=True)
        _place(task, target).set_container_image(_image(config, target.image_role))
        latencies[f"latency_{i}"] = task.outputs["latency"]
    previous = {"history": history} if history is not None else {}
    trained = _common(stages.train_predictors(
        config_json=resolved, store_uri=store_uri, population=population,
        accuracy=accuracy, **previous, **latencies,
    ), config, f"iter {it}: record and train predictors", cache=True, uses_store=True)
    if it + 1 == config.search.iterations:
        return
    with dsl.If(trained.outputs["Output"] == True, name=f"continue-after-{it}"):  # noqa: E712
        proposed = _common(stages.run_moea(
            config_json=resolved, iteration=it + 1, measurements=trained.outputs["measurements"],
            predictors=trained.outputs["predictors"],
        ), config, f"iter {it + 1}: search predictors (MOEA)", cache=True)
        _iteration(config, it + 1, config_json, resolved, checkpoint, store_uri, proposed.outputs["population"],
                   trained.outputs["measurements"])


def build_pipeline(config: LinasConfig):
    if config.search.mode == "validation":
        raise ValueError("search.mode: validation-only search runs in-process (`linas search`); "
                         "the pipeline runs the modes linas and oneshot")
    if len(config.targets) > stages.MAX_TARGETS:
        raise ValueError(f"targets: at most {stages.MAX_TARGETS} hardware targets per pipeline")
    iterations = config.search.iterations
    search = config.search

    @dsl.pipeline(name=f"linas-{config.name}".lower().replace("_", "-").replace(".", "-"),
                  description=f"LINAS search '{config.name}': up to {iterations} iterations")
    def linas(
        store_uri: str = config.store or "",
        checkpoint: str = config.supernet.checkpoint or "",
        seed: int = config.seed,
        max_iterations: int = iterations,
        population: int = search.population if isinstance(search.population, int) else 0,  # 0: 'auto'
        inner_evaluations: int = search.inner.evaluations,
        early_stop_threshold: float = search.early_stop.threshold,
        early_stop_window: int = search.early_stop.window,
        config_json: str = config.to_json(),
    ):
        run_parameters = dict(
            config_json=config_json, compiled_iterations=iterations, seed=seed, max_iterations=max_iterations,
            population=population, inner_evaluations=inner_evaluations,
            early_stop_threshold=early_stop_threshold, early_stop_window=early_stop_window,
        )
        # The report is the exit task: it runs after the last iteration that ran, early
        # stop or failure alike, and reads the run's measurements from the store.
        report = _common(stages.report(store_uri=store_uri, **run_parameters), config, "report", cache=False,
                         uses_store=True)
        with dsl.ExitHandler(report, name="linas-iterations"):
            resolved = _common(stages.resolve_config(**run_parameters), config, "apply run parameters",
                               cache=True).output
            # never cached: a recurring run's population depends on the store's previous run
            sampled = _common(stages.sample(config_json=resolved, store_uri=store_uri), config,
                              "sample initial population", cache=False, uses_store=True)
            _iteration(config, 0, config_json, resolved, checkpoint, store_uri, sampled.outputs["population"], None)

    return linas


def compile_pipeline(config: LinasConfig, package_path: str) -> str:
    from kfp import compiler

    compiler.Compiler().compile(build_pipeline(config), package_path)
    return package_path
