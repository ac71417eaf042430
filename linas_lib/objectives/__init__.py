"""Real measurements: quality and complexity once per sub-network, latency per target.

Each function takes a batch of encodings and returns one plain row per sub-network.
A sub-network whose measurement raises or returns a non-finite value gets a row
with the reason instead of values, so the batch always completes.
"""
from linas_lib.objectives.latency import measure_latency
from linas_lib.objectives.quality import measure_quality

__all__ = ["measure_latency", "measure_quality"]


def supernet_measure(config, supernet):
    """The real `measure(iteration, X, predictions)` of the search loops."""
    from linas_lib.measurements import combine

    def measure(iteration, X, predictions=None):
        quality = measure_quality(supernet, X, supernet.quality_metric in config.objectives)
        latency = {t.name: measure_latency(supernet, X, t, config.search.normalize_latency) for t in config.targets}
        return combine(iteration=iteration, run=config.name, quality_rows=quality, latency_rows=latency,
                       predictions=predictions)

    return measure
