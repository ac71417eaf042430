"""Real measurements: quality and complexity once per sub-network, latency per target.

Each function takes a batch of encodings and returns one plain row per sub-network.
A sub-network whose measurement fails (after the policy's retries) or returns an
impossible value gets a row with the reason instead of values, so the batch always
completes. With an evaluation cache, known values are reused and new ones recorded.
"""
from linas_lib.objectives.latency import check_drift, measure_latency, target_fingerprint
from linas_lib.objectives.quality import measure_quality

__all__ = ["SupernetMeasurer", "check_drift", "measure_latency", "measure_quality", "supernet_measure",
           "target_fingerprint"]


class SupernetMeasurer:
    """The real `measure(iteration, X, predictions)` of the search loops."""

    def __init__(self, config, supernet, cache=None):
        self.config, self.supernet, self.cache = config, supernet, cache

    def __call__(self, iteration, X, predictions=None):
        from linas_lib.measurements import combine

        config, policy = self.config, self.config.measurement
        quality = measure_quality(self.supernet, X, self.supernet.quality_metric in config.objectives,
                                  policy=policy, cache=self.cache)
        latency = {t.name: measure_latency(self.supernet, X, t, config.search.normalize_latency, policy=policy,
                                           cache=self.cache) for t in config.latency_targets}
        return combine(iteration=iteration, run=config.name, quality_rows=quality, latency_rows=latency,
                       predictions=predictions)

    def check_drift(self, previous: dict[str, dict[str, dict]]) -> dict[str, dict]:
        """Per target: re-measure the previous front (`previous[target]`) and compare."""
        return {t.name: check_drift(self.supernet, t, previous.get(t.name, {}), self.config.recurring.drift_threshold,
                                    policy=self.config.measurement, cache=self.cache,
                                    normalize=self.config.search.normalize_latency)
                for t in self.config.latency_targets}


def supernet_measure(config, supernet, cache=None) -> SupernetMeasurer:
    return SupernetMeasurer(config, supernet, cache)
