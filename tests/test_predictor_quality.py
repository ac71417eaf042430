"""`linas predictors evaluate`: the paper's appendix-C predictor-quality protocol."""
from __future__ import annotations

import argparse
import json

import numpy as np
import pytest
from matplotlib.image import imread
from scipy.stats import kendalltau

from linas_lib.analysis.predictor_quality import (
    add_cli,
    evaluate_predictor_quality,
    kendall_tau,
    mape,
    objective_columns,
)
from linas_lib.config import LinasConfig
from linas_lib.measurements import make_row, to_frame
from linas_lib.supernets import supernet_space

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
NAMES = ["ridge", "svr_rbf", "svr_linear", "stacked"]


@pytest.fixture(scope="module")
def space():
    return supernet_space("elastic_cnn")


def synthetic_table(space, n: int = 300, seed: int = 0):
    """A measurement table like a run's: quality, latency (+ its statistics), MACs,
    params, logged predictions, and a few failed rows that must be ignored."""
    rng = np.random.default_rng(seed)
    X = space.sample(n, rng)
    active = space.active_mask(X)
    values = np.stack([np.asarray(v.options, float)[X[:, j]] for j, v in enumerate(space.variables)], axis=1) * active
    kernels = [j for j, name in enumerate(space.names) if name.endswith(".kernel")]
    macs = sum(values[:, j] ** 2 * values[:, j + 1] * (1 + int(space.names[j][1])) for j in kernels) * 1e4
    latency = 2.0 + macs / 2e5 + 0.3 * active[:, kernels].sum(axis=1)
    accuracy = 0.7 + 0.2 * (1 - np.exp(-macs / 2e6))
    rows = []
    for i, x in enumerate(X):
        rows.append(make_row(
            subnet_id=space.key(x), encoding=x, iteration=i // 50, run="synthetic", targets=["cpu-ort"],
            values={
                "accuracy": accuracy[i] + 0.003 * rng.standard_normal(),
                "latency@cpu-ort": latency[i] * (1 + 0.02 * rng.standard_normal()),
                "latency_cv@cpu-ort": 0.02,
                "latency_p90@cpu-ort": latency[i] * 1.1,
                "macs": macs[i],
                "params": 1e3 + 0.1 * macs[i],
                "pred:accuracy": accuracy[i],
            },
        ))
    for i in range(3):
        rows.append(make_row(subnet_id=f"failed{i}", encoding=X[i], iteration=0, error="OOM",
                             values={"accuracy": float("nan")}))
    return to_frame(rows)


def run_cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="linas")
    add_cli(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


def test_metrics_match_scipy():
    rng = np.random.default_rng(3)
    actual = rng.integers(0, 30, size=80).astype(float)  # with ties
    predicted = np.vstack([actual + rng.normal(0, s, size=80) for s in (0.5, 5, 50)])
    predicted[2, :10] = predicted[2, 0]  # ties in a prediction too
    expected = [kendalltau(actual, p).statistic for p in predicted]
    np.testing.assert_allclose(kendall_tau(actual, predicted), expected, rtol=1e-12)
    assert np.isnan(kendall_tau(actual, np.ones((1, 80)))[0])
    np.testing.assert_allclose(mape([1.0, 2.0], [[1.1, 1.8]]), [10.0])


def test_objective_columns_skip_latency_statistics_and_predictions(space):
    frame = synthetic_table(space, n=20)
    assert objective_columns(frame) == ["accuracy", "latency@cpu-ort", "macs", "params"]


def test_cli_on_a_small_table(space, tmp_path):
    path = tmp_path / "measurements.parquet"
    synthetic_table(space).to_parquet(path, index=False)
    out = tmp_path / "quality"
    code = run_cli(["predictors", "evaluate", str(path), "--out", str(out), "--trials", "2",
                    "--train-sizes", "20,60,180,5000", "--jobs", "1", "--seed", "1"])
    assert code == 0

    result = json.loads((out / "predictor_quality.json").read_text())
    assert result["n_usable"] == 300 and result["n_ok"] == 300 and result["n_records"] == 303
    # 300 records is small: the test set shrinks to n // 3 and the JSON says so
    assert result["test_size"] == 100 and result["test_size_requested"] == 500 and result["test_size_reduced"]
    assert result["pool_size"] == 200
    assert any("test set" in note for note in result["notes"])
    assert result["train_sizes"] == [20, 60, 180]  # 5000 > pool: dropped
    assert result["trials"] == 2
    assert result["predictors"] == NAMES
    assert result["objectives"] == ["accuracy", "latency@cpu-ort", "macs", "params"]
    assert result["space"] == "elastic_cnn" and result["source"] == str(path)

    for objective in result["objectives"]:
        for name in NAMES:
            entry = result["results"][objective][name]
            for key in ("mape_mean", "mape_std", "kendall_tau_mean", "kendall_tau_std"):
                assert len(entry[key]) == 3
                assert all(v is not None and np.isfinite(v) for v in entry[key]), (objective, name, key)
            assert all(v >= 0 for v in entry["mape_mean"] + entry["mape_std"] + entry["kendall_tau_std"])
            assert all(-1 <= v <= 1 for v in entry["kendall_tau_mean"])
    # MACs are a deterministic function of the encoding: more data, better predictions
    for name in NAMES:
        entry = result["results"]["macs"][name]
        assert entry["mape_mean"][-1] < entry["mape_mean"][0], name
        assert entry["kendall_tau_mean"][-1] > entry["kendall_tau_mean"][0], name
        assert entry["kendall_tau_mean"][-1] > 0.8, name

    scatter = result["predicted_vs_actual"]
    assert scatter["predictor"] == "stacked" and scatter["train_size"] == 180
    for objective in result["objectives"]:
        data = scatter["objectives"][objective]
        assert len(data["actual"]) == len(data["predicted"]) == 100
        assert -1 <= data["kendall_tau"] <= 1 and data["mape"] >= 0

    for name in ("mape.png", "kendall_tau.png", "predicted_vs_actual.png"):
        png = out / name
        assert png.read_bytes()[:8] == PNG_SIGNATURE
        image = imread(png)
        assert image.ndim == 3 and image.shape[0] > 100 and image.shape[1] > 100


def test_run_directory_with_config_and_options(space, tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    synthetic_table(space, n=120, seed=5).to_parquet(run / "measurements.parquet", index=False)
    (run / "config.json").write_text(json.dumps(LinasConfig().model_dump()))
    code = run_cli(["predictors", "evaluate", str(run), "--out", str(tmp_path / "q"), "--trials", "2",
                    "--objectives", "macs", "--predictors", "ridge,svr_linear", "--train-sizes", "30,60",
                    "--test-size", "30", "--jobs", "1"])
    assert code == 0
    result = json.loads((tmp_path / "q" / "predictor_quality.json").read_text())
    assert "config.json" in result["space_source"]
    assert result["objectives"] == ["macs"] and result["predictors"] == ["ridge", "svr_linear"]
    assert result["test_size"] == 30 and not any("test set" in n for n in result["notes"])
    assert result["predicted_vs_actual"]["predictor"] == "ridge"
    # without stacked nothing is shared: every predictor has its own fit times
    assert result["shared_bases"] == []
    assert all(v > 0 for v in result["results"]["macs"]["svr_linear"]["fit_seconds_mean"])
    assert "macs" in capsys.readouterr().out


def test_core_function_is_deterministic_and_validates(space):
    frame = synthetic_table(space, n=90, seed=2)
    kwargs = dict(objectives=["latency@cpu-ort"], predictors=["ridge", "stacked"], train_sizes=[20, 40],
                  trials=2, seed=3)
    a = evaluate_predictor_quality(frame, space, **kwargs)
    b = evaluate_predictor_quality(frame, space, **kwargs)
    for key in ("mape_mean", "kendall_tau_mean"):
        assert a["results"]["latency@cpu-ort"]["stacked"][key] == b["results"]["latency@cpu-ort"]["stacked"][key]
    assert a["shared_bases"] == ["ridge"]
    with pytest.raises(ValueError, match="no column"):
        evaluate_predictor_quality(frame, space, objectives=["top5"], trials=1)
    with pytest.raises(ValueError, match="available"):
        evaluate_predictor_quality(frame, space, predictors=["knn"], trials=1)


def test_cli_reports_a_missing_table(tmp_path, capsys):
    assert run_cli(["predictors", "evaluate", str(tmp_path / "nope"), "--out", str(tmp_path / "q")]) == 2
    assert "no measurement table" in capsys.readouterr().err
