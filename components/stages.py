"""The LINAS stages as KFP v2 lightweight components (no `from __future__ import
annotations` here: KFP reads the real annotation objects).

Bodies stay thin: KFP embeds each body's source into every unrolled task of the
compiled pipeline, so all logic lives in `linas_lib.stages` inside the image.
"""

from typing import Optional

from kfp import dsl
from kfp.dsl import HTML, Dataset, Input, Markdown, Metrics, Model, Output

from components.images import image

BASE = image("base")
# Up to four objectives means up to four latency targets feed one iteration.
MAX_TARGETS = 4


@dsl.component(base_image=BASE)
def sample(config_json: str, population: Output[Dataset]):
    """Draw the initial population uniformly (seeded)."""
    from linas_lib import stages

    population.metadata["size"] = stages.sample(config_json, population.path)


@dsl.component(base_image=BASE)
def evaluate_accuracy(config_json: str, checkpoint: str, population: Input[Dataset], accuracy: Output[Dataset]):
    """Quality metric, MACs and parameters of every sub-network of the population."""
    from linas_lib import stages

    stages.evaluate_accuracy(config_json, checkpoint, population.path, accuracy.path)


@dsl.component(base_image=BASE)
def measure_latency(config_json: str, checkpoint: str, target: str, population: Input[Dataset], latency: Output[Dataset]):
    """Latency of every sub-network of the population on one hardware target."""
    from linas_lib import stages

    stages.measure_latency(config_json, checkpoint, target, population.path, latency.path)
    latency.metadata["target"] = target


@dsl.component(base_image=BASE)
def train_predictors(
    config_json: str,
    store_uri: str,
    population: Input[Dataset],
    accuracy: Input[Dataset],
    latency_0: Input[Dataset],
    measurements: Output[Dataset],
    predictors: Output[Model],
    history: Optional[Input[Dataset]] = None,
    latency_1: Optional[Input[Dataset]] = None,
    latency_2: Optional[Input[Dataset]] = None,
    latency_3: Optional[Input[Dataset]] = None,
):
    """Record the iteration's measurements and fit one predictor per objective."""
    from linas_lib import stages

    latency_paths = [a.path for a in (latency_0, latency_1, latency_2, latency_3) if a is not None]
    measurements.metadata["records"] = stages.train_predictors(
        config_json, store_uri, population.path, accuracy.path, latency_paths,
        history.path if history is not None else None, measurements.path, predictors.path,
    )


@dsl.component(base_image=BASE)
def run_moea(config_json: str, iteration: int, measurements: Input[Dataset], predictors: Input[Model],
             population: Output[Dataset]):
    """Search the predictors with the inner MOEA; emit the best unmeasured sub-networks."""
    from linas_lib import stages

    stages.run_moea(config_json, iteration, measurements.path, predictors.path, population.path)


@dsl.component(base_image=BASE)
def report(config_json: str, store_uri: str, measurements: Input[Dataset], html: Output[HTML],
           summary: Output[Markdown], metrics: Output[Metrics]):
    """Pareto front, hypervolume curve and predictor quality for the Kubeflow UI."""
    from linas_lib import stages

    for name, value in stages.report(config_json, store_uri, measurements.path, html.path, summary.path).items():
        metrics.log_metric(name, value)
