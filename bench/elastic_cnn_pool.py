#!/usr/bin/env python
"""Measure a pool of elastic_cnn sub-networks for real, once, for the search suite.

The suite's `elastic_cnn` problem searches among these sub-networks only
(bench/plugins/elastic_cnn_pool.py): every method then sees real accuracies (test
split of Animal-MNIST, the `make run` checkpoint) and real ONNX Runtime latencies
(batch 32, 1 thread: the `make run` target), and a search costs seconds instead of
hours. Measured through the ordinary path (`supernet_measure`), with the load average
and CPU time of every batch recorded beside the numbers.

    .venv/bin/python bench/elastic_cnn_pool.py --size 1200    # about 3 s of CPU per sub-network
Writes bench/data/elastic_cnn_pool.json (appends: an interrupted run resumes).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
OUT = ROOT / "bench" / "data" / "elastic_cnn_pool.json"
CONFIG = ROOT / "pipelines" / "configs" / "animal_mnist.yaml"


def pool_encodings(space, size: int, seed: int) -> np.ndarray:
    """The anchors, then distinct random sub-networks (uniform over the genes, canonical)."""
    rng = np.random.default_rng(seed)
    X = [space.canonicalize(space.anchors())] if len(space.anchors()) else []
    keys = set(space.keys(X[0])) if X else set()
    while sum(len(x) for x in X) < size:
        batch = space.canonicalize(space.sample(size, rng))
        fresh = [i for i, k in enumerate(space.keys(batch)) if not (k in keys or keys.add(k))]
        X.append(batch[fresh])
    return np.vstack(X)[:size]


def main(argv=None) -> int:
    import torch

    torch.set_num_threads(1)
    from linas_lib.api.objective import ColumnKey
    from linas_lib.config import load_config
    from linas_lib.measurements import successful
    from linas_lib.objectives import supernet_measure
    from linas_lib.supernets import load_supernet

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=1200)
    parser.add_argument("--batch", type=int, default=25)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)

    config = load_config(CONFIG)
    net = load_supernet(config.supernet, progress=True)
    space = net.space
    objectives = config.resolved_objectives()
    measure = supernet_measure(config, net)
    X = pool_encodings(space, args.size, args.seed)
    doc = json.loads(args.out.read_text()) if args.out.exists() else {
        "about": "elastic_cnn sub-networks measured for real: test-split accuracy, ONNX Runtime CPU latency "
                 "(batch 32, 1 thread), exact MACs and params",
        "config": str(CONFIG.relative_to(ROOT)), "checkpoint_digest": net.checkpoint_digest,
        "objectives": [o.name for o in objectives], "genes": space.names, "rows": []}
    if doc["checkpoint_digest"] != net.checkpoint_digest:
        raise SystemExit(f"{args.out} holds measurements of checkpoint {doc['checkpoint_digest']}, "
                         f"this one is {net.checkpoint_digest}: move the file away to start a new pool")
    done = {tuple(r["encoding"]) for r in doc["rows"]}
    todo = np.array([x for x in X if tuple(int(g) for g in x) not in done], dtype=np.int64).reshape(-1, space.n_var)
    print(f"pool: {len(done)} measured, {len(todo)} to go", flush=True)
    for start in range(0, len(todo), args.batch):
        chunk = todo[start:start + args.batch]
        load, cpu0, t0 = os.getloadavg()[0], time.process_time(), time.perf_counter()
        frame = measure(0, chunk)
        ok = successful(frame, [o.name for o in objectives])
        by_key = {r["subnet_id"]: r for r in ok.to_dict("records")}
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - t0
        for x, key in zip(chunk, space.keys(chunk)):
            if key not in by_key:
                continue
            r = by_key[key]
            row = {"encoding": [int(g) for g in x], **{o.name: float(r[o.name]) for o in objectives},
                   **{c: float(r[c]) for c in r if ColumnKey.parse(c).statistic == "cv"},
                   "load_1m": round(load, 2),
                   "cpu_s": round(cpu / len(chunk), 3), "wall_s": round(wall / len(chunk), 3)}
            c = net.complexity(x[None])
            row.update(macs=float(c["macs"][0]), params=float(c["params"][0]))
            doc["rows"].append(row)
        tmp = args.out.with_suffix(".tmp")
        tmp.write_text(json.dumps(doc, separators=(",", ":")))
        os.replace(tmp, args.out)  # crash-safe: a killed run keeps every finished batch
        print(f"{len(doc['rows'])}/{args.size}  {wall / len(chunk):.2f} s and {cpu / len(chunk):.2f} s CPU per "
              f"sub-network, load {load:.2f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
