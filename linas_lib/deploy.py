"""Hand-offs to deployment: measure one sub-network on many targets, export one.

`linas measure` and `linas export` are thin wrappers around these two functions.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from linas_lib.config import LinasConfig, TargetConfig


def parse_subnet(space, subnet: str, seed: int = 0) -> np.ndarray:
    """'random', a JSON list of gene indices, or comma-separated indices -> canonical encoding."""
    from linas_lib.api.search_space import InvalidEncodingError
    from linas_lib.messages import short_repr

    if subnet.strip() == "random":
        return space.sample(1, seed)[0]
    text = subnet.strip()
    shown = short_repr(text, 62)  # a long --subnet is not echoed whole
    if text.startswith("["):
        try:
            genes = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InvalidEncodingError(f"--subnet {shown}: not a JSON list of gene indices ({exc.msg})") from None
        if not isinstance(genes, list) or any(isinstance(g, list) for g in genes):
            raise InvalidEncodingError(f"--subnet {shown}: expected one flat list of {space.n_var} gene indices")
    else:
        genes = [_gene(g.strip()) for g in text.split(",") if g.strip()]
    try:
        return space.canonicalize(genes)[0]
    except InvalidEncodingError as exc:
        raise InvalidEncodingError(f"--subnet {shown}: {exc}") from None


def _gene(text: str):
    """One comma-separated gene: an int when it is one, else the text (which validation names)."""
    try:
        return int(text)
    except ValueError:
        try:
            return float(text)  # '2.0' is fine, '1.5' and 'nan' are named by validation
        except ValueError:
            return text


def measure_one(config: LinasConfig, supernet, encoding: np.ndarray, target_names: list[str] | None = None) -> list[dict[str, Any]]:
    """Quality once (when an objective of the config: a latency-only setup, e.g. OFA without
    weights, has none to measure), then latency on every chosen target: one row per target."""
    from linas_lib.measurements import column, cpu_column, cv_column, latency_column, load_column
    from linas_lib.objectives import measure_latency, measure_quality

    names = target_names or [t.name for t in config.targets]
    unknown = sorted(set(names) - {t.name for t in config.targets})
    if unknown:
        raise ValueError(f"--targets: unknown target(s) {unknown}; the config has {[t.name for t in config.targets]}")
    wanted = supernet.quality_metric in config.objectives
    (quality,) = measure_quality(supernet, encoding[None, :], wanted)
    rows = []
    for target in (t for t in config.targets if t.name in names):
        (lat,) = measure_latency(supernet, encoding[None, :], target, policy=config.measurement)
        fp = lat.get("fingerprint", {})
        rows.append({
            "target": target.name, "backend": target.backend, "precision": target.precision,
            "batch": target.batch_size, "threads": target.threads,
            "latency_ms": lat["values"].get(latency_column(target.name)),
            "cv": lat["values"].get(cv_column(target.name)),
            "p90_ms": lat["values"].get(column("latency", target.name, "p90")),
            "cpu_ms": lat["values"].get(cpu_column(target.name)),
            "load_1m": lat["values"].get(load_column(target.name)),
            supernet.quality_metric: lat["values"].get(f"{supernet.quality_metric}@{target.name}",
                                                       quality["values"].get(supernet.quality_metric)),
            "error": "; ".join(e for e in (quality["error"], lat["error"]) if e),
            "backend_version": fp.get("backend_version", ""),
            # the sub-network's own, the same on every target
            **{k: quality["values"][k] for k in ("macs", "params") if k in quality["values"]},
        })
    return rows


def export_subnet(run_dir: str, subnet_id: str, fmt: str, int8: bool = False, out: str | None = None) -> Path:
    """Write the measured sub-network `subnet_id` of a run, with its weights, as ONNX or OpenVINO IR."""
    from linas_lib.backends.export import export_onnx
    from linas_lib.config import config_from_dict
    from linas_lib.measurements import encodings
    from linas_lib.runs import RunStore
    from linas_lib.search.core import plain_records
    from linas_lib.supernets import load_supernet

    if fmt not in ("onnx", "openvino"):
        raise ValueError(f"--format {fmt!r}: allowed: onnx, openvino")
    if int8 and fmt != "openvino":
        raise ValueError("--int8 needs --format openvino (NNCF post-training quantization)")
    if "://" not in str(run_dir) and not Path(run_dir).is_dir():
        raise FileNotFoundError(f"run directory {str(run_dir)!r} does not exist")
    run = RunStore(run_dir)
    if not run.store.exists("config.json"):
        raise FileNotFoundError(f"{run_dir} is not a LINAS run directory (no config.json)")
    from linas_lib.api.store import get_json

    config = config_from_dict(get_json(run.store, "config.json"))
    frame = run.load_measurements()
    row = frame[frame["subnet_id"] == subnet_id]
    if row.empty:
        raise KeyError(f"sub-network {subnet_id!r} was not measured in {run_dir}")
    encoding = encodings(row)[0]
    supernet = load_supernet(config.supernet, progress=False)
    batch = config.targets[0].batch_size
    module, inputs = supernet.export_module(encoding, batch)
    folder = Path(out or Path(run_dir) / "exports")
    folder.mkdir(parents=True, exist_ok=True)
    stem = f"{subnet_id}{'-int8' if int8 else ''}"
    if fmt == "onnx":
        path = folder / f"{stem}.onnx"
        path.write_bytes(export_onnx(module, inputs, dynamic_batch=True))
    else:
        from linas_lib.backends.openvino_backend import OpenVINOBackend

        # the INT8 target's calibration, as measured; else the TargetConfig default
        samples = next((t.calibration_count for t in config.targets if t.backend == "openvino"
                        and t.precision == "int8"), TargetConfig.model_fields["calibration_samples"].default)
        backend = OpenVINOBackend(precision="int8" if int8 else "fp32", calibration_samples=samples)
        import openvino as ov  # after the backend: it turns vendor telemetry off first

        calibration = supernet.calibration_inputs(batch, max(1, -(-samples // batch))) if int8 else None
        path = folder / f"{stem}.xml"
        # FP32 as measured: save_model would otherwise compress the weights to FP16
        ov.save_model(backend.to_model(module, inputs, calibration), str(path), compress_to_fp16=False)
    # the measured record as pareto.json writes it: plain JSON (no NaN, no predictions), an ISO time
    (record,) = plain_records(row.iloc[:1], supernet.space)
    what = {key: record.pop(key) for key in ("subnet_id", "encoding", "architecture")}
    (folder / f"{stem}.json").write_text(json.dumps({
        **what, "supernet": config.supernet.name, "checkpoint_digest": getattr(supernet, "checkpoint_digest", None),
        "format": fmt, "int8": int8, "measured": record,
    }, indent=2, allow_nan=False, default=str))
    return path
