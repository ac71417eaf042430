"""The LINAS pipeline, built from a config.

KFP v2 has no loop with a dynamic end and no recursion, so the LINAS iterations
are unrolled at compile time: the config's evaluation budget fixes their number.
"""

from kfp import dsl

from components import stages
from linas_lib.config import LinasConfig


def _display(task, name: str, cache: bool):
    task.set_display_name(name)
    task.set_caching_options(cache)  # pure steps cache; measurements never do
    return task


def build_pipeline(config: LinasConfig):
    if len(config.targets) > stages.MAX_TARGETS:
        raise ValueError(f"targets: at most {stages.MAX_TARGETS} hardware targets per pipeline")
    if config.search.mode == "validation":
        raise ValueError("search.mode: validation-only search runs in-process (`linas search`); "
                         "the pipeline runs the modes linas and oneshot")
    iterations = config.search.iterations

    @dsl.pipeline(name=f"linas-{config.name}".lower(), description=f"LINAS search '{config.name}' ({iterations} iterations)")
    def linas(config_json: str = config.to_json(), checkpoint: str = config.supernet.checkpoint or "",
              store_uri: str = ""):
        population = _display(stages.sample(config_json=config_json), "sample initial population", True).outputs["population"]
        history = None
        for it in range(iterations):
            accuracy = _display(
                stages.evaluate_accuracy(config_json=config_json, checkpoint=checkpoint, population=population),
                f"iter {it}: evaluate accuracy", False)
            latencies = {
                f"latency_{i}": _display(
                    stages.measure_latency(config_json=config_json, checkpoint=checkpoint, target=t.name,
                                           population=population),
                    f"iter {it}: latency on {t.name}", False).outputs["latency"]
                for i, t in enumerate(config.targets)
            }
            previous = {"history": history} if history is not None else {}
            trained = _display(
                stages.train_predictors(config_json=config_json, store_uri=store_uri, population=population,
                                        accuracy=accuracy.outputs["accuracy"], **previous, **latencies),
                f"iter {it}: record and train predictors", True)
            history = trained.outputs["measurements"]
            if it + 1 < iterations:
                population = _display(
                    stages.run_moea(config_json=config_json, iteration=it + 1, measurements=history,
                                    predictors=trained.outputs["predictors"]),
                    f"iter {it + 1}: search predictors (MOEA)", True).outputs["population"]
        _display(stages.report(config_json=config_json, store_uri=store_uri, measurements=history),
                 "report", False)

    return linas


def compile_pipeline(config: LinasConfig, package_path: str) -> str:
    from kfp import compiler

    compiler.Compiler().compile(build_pipeline(config), package_path)
    return package_path
