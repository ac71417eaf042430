"""The LINAS stages as KFP v2 lightweight components (no `from __future__ import
annotations` here: KFP reads the real annotation objects).

Bodies stay thin: KFP embeds each body's source into every unrolled task of the
compiled pipeline, so all logic lives in `linas_lib.stages` inside the image.
"""

import functools
from typing import List, Optional

from kfp import dsl
from kfp.dsl import HTML, Dataset, Input, Markdown, Metrics, Model, Output

from components.images import image

BASE = image("base")
# The images ship kfp; skipping the per-task `pip install kfp` bootstrap also keeps
# every executor of the unrolled pipeline short.
component = functools.partial(dsl.component, base_image=BASE, install_kfp_package=False)
# A config holds at most five objectives: a quality and up to four latency targets.
MAX_TARGETS = 4


# Comments rather than docstrings: KFP copies each body, docstring included, into
# every unrolled task of the compiled pipeline.

# Apply the run's parameters (set in the UI) to the compiled config; validate once.
@component
def resolve_config(config_json: str, compiled_iterations: int, overrides: dict) -> str:
    from linas_lib import stages

    return stages.resolve_config(config_json, compiled_iterations, overrides)


# Take the store's one-writer lease; draw the initial population (seeded), or start
# from the previous run's front.
@component
def sample(config_json: str, store_uri: str, run_id: str, run_name: str, population: Output[Dataset]):
    from linas_lib import stages

    population.metadata["size"] = stages.sample(config_json, store_uri, population.path, run_id, run_name)


# Quality metric, MACs and parameters of one shard of the population.
@component
def evaluate_accuracy(config_json: str, checkpoint: str, store_uri: str, shard: int, shards: int,
                      population: Input[Dataset], accuracy: Output[Dataset]):
    from linas_lib import stages

    accuracy.metadata["size"] = stages.evaluate_accuracy(
        config_json, checkpoint, population.path, accuracy.path, shard, shards, store_uri)


# Join the accuracy shards of a population (only in pipelines with sharding).
@component
def gather_accuracy(shards: Input[List[Dataset]], accuracy: Output[Dataset]):
    from linas_lib import stages

    accuracy.metadata["size"] = stages.gather_accuracy([s.path for s in shards], accuracy.path)


# Latency of every sub-network of the population on one hardware target.
@component
def measure_latency(config_json: str, checkpoint: str, store_uri: str, target: str, population: Input[Dataset],
                    latency: Output[Dataset]):
    from linas_lib import stages

    stages.measure_latency(config_json, checkpoint, target, population.path, latency.path, store_uri)
    latency.metadata["target"] = target


# Record the iteration's measurements, fit one predictor per objective; True to go on.
@component
def train_predictors(
    config_json: str,
    store_uri: str,
    run_id: str,
    population: Input[Dataset],
    accuracy: Input[Dataset],
    latency_0: Input[Dataset],
    measurements: Output[Dataset],
    predictors: Output[Model],
    history: Optional[Input[Dataset]] = None,
    latency_1: Optional[Input[Dataset]] = None,
    latency_2: Optional[Input[Dataset]] = None,
    latency_3: Optional[Input[Dataset]] = None,
) -> bool:
    from linas_lib import stages

    latency_paths = [a.path for a in (latency_0, latency_1, latency_2, latency_3) if a is not None]
    return stages.train_predictors(
        config_json, store_uri, population.path, accuracy.path, latency_paths,
        history.path if history is not None else None, measurements.path, predictors.path, run_id,
    )


# Search the predictors with the inner MOEA; emit the best unmeasured sub-networks.
@component
def run_moea(config_json: str, iteration: int, measurements: Input[Dataset], predictors: Input[Model],
             population: Output[Dataset]):
    from linas_lib import stages

    stages.run_moea(config_json, iteration, measurements.path, predictors.path, population.path)


# Pareto fronts, hypervolume curve and predictor quality for the Kubeflow UI. It is
# the exit task, so it takes the raw run parameters and reads the run's store.
@component
def report(store_uri: str, run_id: str, config_json: str, compiled_iterations: int, overrides: dict,
           html: Output[HTML], summary: Output[Markdown], metrics: Output[Metrics]):
    from linas_lib import stages

    try:
        config_json = stages.resolve_config(config_json, compiled_iterations, overrides)
    except ValueError as exc:  # the run failed in "apply run parameters": say why, do not retry
        stages.report_refused(str(exc), html.path, summary.path)
        return
    for name, value in stages.report(config_json, store_uri, None, html.path, summary.path, run_id).items():
        metrics.log_metric(name, value)
