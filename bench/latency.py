"""Latency backends compared: repeatability, cost per sub-network and agreement of rankings.

    .venv/bin/python bench/latency.py [--quick]

For the built-in image super-network (elastic_cnn, briefly trained) and an
OFA-MobileNetV3 (the `ofa_mbv3` plugin, untrained he_fout weights: latency only;
a MobileNetV3-style stand-in built here if that plugin is unavailable), every
sub-network of a sample is measured on every backend: torch (eager), onnxruntime,
openvino fp32, openvino int8 (NNCF) and a lookup table built from onnxruntime
measurements of the sample's layers. Reported: the CV within one measurement and
across repeated measurements (1 thread), the time to export / quantize / compile /
measure one sub-network, INT8-vs-FP32 agreement, and Kendall's tau between
backends. Writes bench/results/latency.json and bench/results/latency.png.
"""
from __future__ import annotations

import argparse
import importlib.metadata as md
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from linas_lib.backends import build_backend  # noqa: E402
from linas_lib.backends.lut import build_table  # noqa: E402
from linas_lib.backends.timing import host_fingerprint  # noqa: E402

RESULTS = ROOT / "bench" / "results"
BACKENDS = ("torch", "onnxruntime", "openvino-fp32", "openvino-int8")
ALL = BACKENDS + ("lut",)


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def versions() -> dict:
    out = {"python": platform.python_version()}
    for pkg in ("torch", "onnxruntime", "onnx", "openvino", "nncf", "numpy", "scipy"):
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            out[pkg] = None
    return out


def cpu_flags() -> list[str]:
    try:
        flags = next(line for line in open("/proc/cpuinfo") if line.startswith("flags")).split(":", 1)[1].split()
    except (OSError, StopIteration):
        return []
    return sorted(f for f in flags if f.startswith(("avx512", "amx", "avx2", "avx_vnni")))


# ---- the OFA-MobileNetV3 stand-in (only when the ofa_mbv3 plugin cannot be used) ----------------
class MobileNetV3StandIn:
    """OFA-MobileNetV3-shaped sub-networks (5 stages, depth {2,3,4}, kernel {3,5,7}, expand {3,4,6},
    SE and h-swish as in OFA), random he_fout init and batch-norm recalibration on random inputs."""

    WIDTHS, STRIDES = (24, 40, 80, 112, 160), (2, 2, 2, 1, 2)
    ACTS, SE = ("relu", "relu", "h_swish", "h_swish", "h_swish"), (False, True, False, True, True)

    def __init__(self, resolution: int, seed: int = 0):
        self.resolution, self.seed = resolution, seed

    def sample(self, n: int, rng) -> np.ndarray:
        X = np.stack([np.concatenate([rng.integers(0, 3, 5), rng.integers(0, 3, 40)]) for _ in range(n)])
        X[0], X[-1] = 0, 2  # smallest and largest
        return X

    def _net(self, encoding):
        import math

        import torch
        from torch import nn

        def act(name):
            return nn.ReLU(inplace=True) if name == "relu" else nn.Hardswish(inplace=True)

        def conv_bn(cin, cout, k, stride=1, groups=1, a=None, bn=True):
            layers = [nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=not bn)]
            layers += [nn.BatchNorm2d(cout)] if bn else []
            layers += [act(a)] if a else []
            return nn.Sequential(*layers)

        class SE(nn.Module):
            def __init__(self, c):
                super().__init__()
                mid = max(8, (c // 4 + 4) // 8 * 8)
                self.fc = nn.Sequential(nn.Conv2d(c, mid, 1), nn.ReLU(inplace=True), nn.Conv2d(mid, c, 1),
                                        nn.Hardsigmoid(inplace=True))

            def forward(self, x):
                return x * self.fc(x.mean((2, 3), keepdim=True))

        class Block(nn.Module):
            def __init__(self, cin, cout, k, stride, e, a, se):
                super().__init__()
                mid = cin * e
                parts = [conv_bn(cin, mid, 1, a=a)] if e != 1 else []
                parts += [conv_bn(mid, mid, k, stride, groups=mid, a=a)] + ([SE(mid)] if se else [])
                self.body = nn.Sequential(*parts, conv_bn(mid, cout, 1))
                self.residual = stride == 1 and cin == cout

            def forward(self, x):
                return x + self.body(x) if self.residual else self.body(x)

        class Net(nn.Module):
            def __init__(self, blocks):
                super().__init__()
                self.first_conv = conv_bn(3, 16, 3, 2, a="h_swish")
                self.blocks = nn.Sequential(Block(16, 16, 3, 1, 1, "relu", False), *blocks)
                self.final_expand = conv_bn(160, 960, 1, a="h_swish")
                self.pool = nn.AdaptiveAvgPool2d(1)
                self.feature_mix = conv_bn(960, 1280, 1, a="h_swish", bn=False)
                self.classifier = nn.Sequential(nn.Flatten(), nn.Linear(1280, 1000))

            def forward(self, x):
                return self.classifier(self.feature_mix(self.pool(self.final_expand(self.blocks(self.first_conv(x))))))

        depths = [(2, 3, 4)[i] for i in encoding[:5]]
        ks, es = encoding[5:25], encoding[25:45]
        blocks, cin = [], 16
        for s, (w, st, a, se) in enumerate(zip(self.WIDTHS, self.STRIDES, self.ACTS, self.SE)):
            for b in range(depths[s]):
                i = 4 * s + b
                blocks.append(Block(cin, w, (3, 5, 7)[ks[i]], st if b == 0 else 1, (3, 4, 6)[es[i]], a, se))
                cin = w
        torch.manual_seed(self.seed)
        net = Net(blocks)
        with torch.no_grad():  # OFA's he_fout
            for m in net.modules():
                if isinstance(m, nn.Conv2d):
                    m.weight.normal_(0, math.sqrt(2.0 / (m.kernel_size[0] * m.kernel_size[1] * m.out_channels)))
        return net

    def export_module(self, encoding, batch_size):
        import torch

        net = self._net(np.asarray(encoding))
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.momentum = None
        net.train()
        with torch.no_grad():
            for x in self._synthetic(8, 2, 0):
                net(x)
        gen = torch.Generator().manual_seed(self.seed)
        return net.eval(), (torch.randn(batch_size, 3, self.resolution, self.resolution, generator=gen),)

    def _synthetic(self, batch, n, offset):
        import torch

        gen = torch.Generator().manual_seed(self.seed + 7919 * offset)
        return [torch.randn(batch, 3, self.resolution, self.resolution, generator=gen) for _ in range(n)]

    def calibration_inputs(self, batch_size, n_batches):
        return [(x,) for x in self._synthetic(batch_size, n_batches, 1)]


# ---- networks ------------------------------------------------------------------------------------
def spread_sample(space, n: int, seed: int) -> np.ndarray:
    """Smallest, largest and n-2 random sub-networks of a plugin's space."""
    rng = np.random.default_rng(seed)
    X = np.vstack([np.zeros((1, space.n_var), dtype=np.int64), space.sample(n - 2, rng), space.upper[None]])
    return space.canonicalize(X)


def elastic_cnn(n: int):
    from linas_lib.supernets import build_supernet, cache_dir

    t0 = time.perf_counter()
    plugin = build_supernet("elastic_cnn", epochs=1, train_limit=512, progress=False, calibration_images=250)
    plugin.load(plugin.prepare(None, cache_dir()))
    info = {"source": "linas_lib elastic_cnn plugin, epochs=1, train_limit=512 (briefly trained)",
            "input": "1x28x28", "prepare_s": time.perf_counter() - t0}
    return plugin, spread_sample(plugin.space, n, 0), info


def ofa_mbv3(n: int, resolution: int):
    try:
        from linas_lib.supernets import build_supernet, cache_dir

        plugin = build_supernet("ofa_mbv3", resolution=resolution, progress=False)
        plugin.load(plugin.prepare(None, cache_dir()))
        X = spread_sample(plugin.space, n, 0)
        plugin.export_module(X[0], 1)  # fails early if the plugin is broken
        return plugin, X, {"source": "linas_lib ofa_mbv3 plugin, untrained (he_fout init, BN recalibrated on "
                                     "random inputs): latency only, no accuracy", "input": f"3x{resolution}x{resolution}"}
    except Exception as exc:  # the plugin is another engineer's work in progress: fall back, and say so
        log(f"ofa_mbv3 plugin unavailable ({exc!r}); using the bench's MobileNetV3 stand-in")
        standin = MobileNetV3StandIn(resolution)
        return standin, standin.sample(n, np.random.default_rng(0)), {
            "source": "stand-in: MobileNetV3-style network built in bench/latency.py (random he_fout init, "
                      f"BN recalibrated on random inputs) because the ofa_mbv3 plugin failed: {exc!r}",
            "input": f"3x{resolution}x{resolution}"}


# ---- measuring -----------------------------------------------------------------------------------
def make_backends(timing: dict) -> dict:
    return {
        "torch": build_backend("torch", **timing),
        "onnxruntime": build_backend("onnxruntime", **timing),
        "openvino-fp32": build_backend("openvino", precision="fp32", **timing),
        "openvino-int8": build_backend("openvino", precision="int8", **timing),
    }


def agreement(a: np.ndarray, b: np.ndarray) -> dict:
    centered = lambda z: z - z.mean(1, keepdims=True)  # noqa: E731
    return {
        "top1_agreement": float((a.argmax(1) == b.argmax(1)).mean()),
        "logit_corr": float(np.corrcoef(a.ravel(), b.ravel())[0, 1]),
        "centered_logit_corr": float(np.corrcoef(centered(a).ravel(), centered(b).ravel())[0, 1]),
    }


class Memo:
    """A plugin whose export_module is memoized (extraction + BN recalibration happen once)."""

    def __init__(self, plugin, name):
        self.plugin, self.name, self._cache = plugin, name, {}

    def export_module(self, encoding, batch_size):
        key = (np.asarray(encoding, dtype=np.int64).tobytes(), batch_size)
        if key not in self._cache:
            self._cache[key] = self.plugin.export_module(encoding, batch_size)
        return self._cache[key]

    def __getattr__(self, attr):
        return getattr(self.plugin, attr)


def bench_network(name, plugin, X, info, batch, timing, repeat_runs, eval_images):
    from scipy.stats import kendalltau

    from linas_lib.supernets.elastic_cnn import count_macs_params

    plugin = Memo(plugin, name)
    backends = make_backends(timing)
    int8_calibration = plugin.calibration_inputs(batch, max(1, 16 // batch))
    subnets, keep = [], {}
    repeat_idx = sorted({0, len(X) // 2, len(X) - 1})
    for i, encoding in enumerate(X):
        t0 = time.perf_counter()
        module, inputs = plugin.export_module(encoding, batch)
        row = {"encoding": np.asarray(encoding).tolist(), "extract_s": time.perf_counter() - t0, "backends": {}}
        row["macs"] = count_macs_params(module, inputs[0])[0]
        runners = {}
        for bname, backend in backends.items():
            t0 = time.perf_counter()
            prepared = backend.prepare(module, inputs, int8_calibration if backend.needs_calibration else None)
            result = backend.time(prepared)
            row["backends"][bname] = {
                "median_ms": result.median_ms, "cv": result.cv, "p90_ms": result.p90_ms, "repeats": result.repeats,
                "cpu_median_ms": result.cpu_median_ms, "cpu_cv": result.cpu_cv, "load_1m": result.load_1m,
                **{k: round(v, 4) for k, v in backend.last_timings_s.items()},
                "total_s": time.perf_counter() - t0,
            }
            if bname.startswith("openvino"):
                runners[bname] = prepared.runner
                row["backends"][bname].update({k: result.fingerprint.get(k) for k in ("int8_layers", "compute_layers")})
            if i in repeat_idx:
                keep[(i, bname)] = (backend, prepared)
        # INT8 vs FP32 (same OpenVINO pipeline, same export): accuracy where the plugin can score, else agreement
        images = eval_images(plugin.plugin)
        a, b = runners["openvino-fp32"](images), runners["openvino-int8"](images)
        row["int8_vs_fp32"] = {"images": int(len(images)), **agreement(a, b)}
        try:
            row["int8_vs_fp32"]["accuracy_fp32"] = plugin.evaluate_exported(encoding, runners["openvino-fp32"])["accuracy"]
            row["int8_vs_fp32"]["accuracy_int8"] = plugin.evaluate_exported(encoding, runners["openvino-int8"])["accuracy"]
        except Exception as exc:  # untrained OFA: no accuracy
            row["int8_vs_fp32"]["accuracy"] = f"n/a: {type(exc).__name__}"
        subnets.append(row)
        log(f"{name} {i + 1}/{len(X)}: " + ", ".join(f"{k} {v['median_ms']:.3f} ms (cv {v['cv']:.1%})"
                                                    for k, v in row["backends"].items()))

    # repeatability: the same compiled model timed again, several times
    repeat = {}
    for bname in BACKENDS:
        per = []
        for i in repeat_idx:
            backend, prepared = keep[(i, bname)]
            runs = [backend.time(prepared) for _ in range(repeat_runs)]
            medians, cpu = [r.median_ms for r in runs], [r.cpu_median_ms for r in runs]
            per.append({"subnet": i, "medians_ms": medians, "cv": float(np.std(medians) / np.mean(medians)),
                        "cpu_medians_ms": cpu, "cpu_cv": float(np.std(cpu) / np.mean(cpu))})
        repeat[bname] = per
    del keep

    # the lookup table, from onnxruntime measurements of this sample's layers
    t0 = time.perf_counter()
    table = build_table(plugin, X, backends["onnxruntime"], batch_size=batch, fit_samples=3)
    table_path = table.save(RESULTS / f"lut-{name}.json")
    lut_build_s = time.perf_counter() - t0
    lut = build_backend("lut", table=table_path, **timing)
    for row, encoding in zip(subnets, X):
        module, inputs = plugin.export_module(encoding, batch)
        r = lut.measure(module, inputs)
        row["backends"]["lut"] = {"median_ms": r.median_ms, "cv": r.cv, "p90_ms": r.p90_ms, "repeats": 0,
                                  "cpu_median_ms": r.median_ms, "cpu_cv": r.cv, **lut.last_timings_s}
    repeat["lut"] = [{"subnet": i, "cv": 0.0, "cpu_cv": 0.0, "note": "a table lookup is deterministic"}
                     for i in repeat_idx]

    lat = {b: np.array([r["backends"][b]["median_ms"] for r in subnets]) for b in ALL}
    lat["macs (proxy)"] = np.array([r["macs"] for r in subnets])
    names = list(lat)
    tau = {a: {b: float(kendalltau(lat[a], lat[b]).statistic) for b in names} for a in names}
    cpu = {b: np.array([r["backends"][b]["cpu_median_ms"] for r in subnets]) for b in ALL}
    cpu["macs (proxy)"] = lat["macs (proxy)"]
    tau_cpu = {a: {b: float(kendalltau(cpu[a], cpu[b]).statistic) for b in names} for a in names}
    summary = {}
    for b in ALL:
        rows = [r["backends"][b] for r in subnets]
        summary[b] = {
            "cv_median": float(np.median([r["cv"] for r in rows])),
            "cv_max": float(np.max([r["cv"] for r in rows])),
            "repeat_cv_median": float(np.median([p["cv"] for p in repeat[b]])),
            "cpu_cv_median": float(np.median([r["cpu_cv"] for r in rows])),
            "cpu_repeat_cv_median": float(np.median([p["cpu_cv"] for p in repeat[b]])),
            "share_cv_le_3pct": float(np.mean([r["cv"] <= 0.03 for r in rows])),
            **{f"{k}_median": float(np.median([r.get(k, 0.0) for r in rows]))
               for k in ("export_s", "quantize_s", "compile_s", "measure_s", "total_s") if k in rows[0]},
            "latency_ms_range": [float(lat[b].min()), float(lat[b].max())],
        }
    agree = [r["int8_vs_fp32"] for r in subnets]
    int8 = {k: float(np.median([a[k] for a in agree])) for k in ("top1_agreement", "logit_corr", "centered_logit_corr")}
    if isinstance(agree[0].get("accuracy_fp32"), float):
        int8["accuracy_drop_median"] = float(np.median([a["accuracy_fp32"] - a["accuracy_int8"] for a in agree]))
    return {
        **info, "batch_size": batch, "subnetworks": len(X), "summary": summary, "kendall_tau": tau,
        "kendall_tau_cpu_time": tau_cpu,
        "int8_vs_fp32_median": int8, "repeatability": repeat,
        "lut": {"table": str(Path(table_path).relative_to(ROOT)), "build_s": lut_build_s,
                "units": len(table.entries), "overhead_ms": table.overhead_ms,
                "call_overhead_ms": table.call_overhead_ms, "fit_mape": table.meta.get("fit_mape"),
                "note": "built from the same sample's layers (as OFA's tables cover the space); overhead fitted "
                        "on 3 directly measured sub-networks"},
        "subnets": subnets,
    }


def busy_caveat(machine: dict) -> str:
    """A warning when other work shared the CPUs: wall-clock CVs then measure the preemption."""
    load = max(machine["loadavg_start"][0], machine.get("loadavg_end", [0])[0])
    if load <= 0.5 * machine["cpu_count"]:
        return ""
    return (f"busy machine: 1-minute load average up to {load:.1f} on {machine['cpu_count']} CPUs while measuring; "
            "single-thread runs were preempted, so wall-clock CVs and cross-backend taus mostly reflect other "
            "processes. Re-run on an idle machine for the CV target; cpu-time figures are less affected.")


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    nets = list(results["networks"])
    fig, axes = plt.subplots(len(nets), 3, figsize=(17, 5 * len(nets)), squeeze=False)
    for row, name in zip(axes, nets):
        res = results["networks"][name]
        subnets = res["subnets"]
        order = np.argsort([s["backends"]["onnxruntime"]["median_ms"] for s in subnets])
        for b in ALL:
            row[0].plot(range(len(order)), [subnets[i]["backends"][b]["median_ms"] for i in order], "o-", label=b, ms=4)
        row[0].set_yscale("log")
        row[0].set(title=f"{name} (batch {res['batch_size']}, 1 thread)", xlabel="sub-network (sorted by onnxruntime)",
                   ylabel="median latency [ms]")
        row[0].legend(fontsize=8)
        tau = res["kendall_tau"]
        labels = list(tau)
        mat = np.array([[tau[a][b] for b in labels] for a in labels])
        im = row[1].imshow(mat, vmin=-1, vmax=1, cmap="RdBu")
        row[1].set_xticks(range(len(labels)), labels, rotation=40, ha="right", fontsize=8)
        row[1].set_yticks(range(len(labels)), labels, fontsize=8)
        for (i, j), v in np.ndenumerate(mat):
            row[1].text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=8)
        row[1].set_title("Kendall tau between backends")
        fig.colorbar(im, ax=row[1], fraction=0.046)
        s = res["summary"]
        x = np.arange(len(BACKENDS))
        for k, (key, label) in enumerate([("cv_median", "wall, within a measurement"),
                                          ("repeat_cv_median", "wall, across 5 re-measurements"),
                                          ("cpu_cv_median", "CPU time, within"),
                                          ("cpu_repeat_cv_median", "CPU time, across")]):
            row[2].bar(x - 0.3 + 0.2 * k, [100 * s[b][key] for b in BACKENDS], 0.2, label=label)
        row[2].axhline(3, color="k", ls="--", lw=1, label="3% target")
        row[2].set_xticks(x, BACKENDS, rotation=20, fontsize=8)
        row[2].set(ylabel="CV [%]", title="Repeatability")
        row[2].legend(fontsize=7, framealpha=0.9, loc="upper right")
    m = results["machine"]
    fig.suptitle(f"Latency backends on {m['cpu_model']} x{m['cpu_count']} (load avg {m['loadavg_start'][0]:.1f} at "
                 f"start, {m.get('loadavg_end', [float('nan')])[0]:.1f} at end)"
                 + ("\n" + m["caveat"][:150] + "..." if m.get("caveat") else ""), fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer sub-networks, shorter timing, lower resolution")
    parser.add_argument("--replot", action="store_true", help="only redraw latency.png from latency.json")
    args = parser.parse_args(argv)
    if args.replot:
        results = json.loads((RESULTS / "latency.json").read_text())
        results["machine"].setdefault("caveat", busy_caveat(results["machine"]))
        (RESULTS / "latency.json").write_text(json.dumps(results, indent=1))
        plot(results, RESULTS / "latency.png")
        return 0
    import torch

    torch.set_num_threads(1)  # eager extraction/recalibration; each backend pins its own threads
    quick = args.quick
    timing = (dict(threads=1, warmup=5, min_repeats=15, min_time_s=0.15) if quick
              else dict(threads=1, warmup=10, min_repeats=30, min_time_s=0.3))
    n_cnn, n_ofa, resolution = (8, 6, 160) if quick else (16, 12, 224)
    RESULTS.mkdir(parents=True, exist_ok=True)
    results = {
        "machine": {**host_fingerprint(), "cpu_flags": cpu_flags(), "loadavg_start": os.getloadavg(),
                    "versions": versions()},
        "settings": {"quick": quick, "timing": timing, "threads": 1,
                     "int8": "OpenVINO + NNCF post-training quantization, 16 calibration samples"},
        "networks": {},
    }
    t_start = time.perf_counter()
    plugin, X, info = elastic_cnn(n_cnn)
    test_images = lambda p: p._splits()[1].x  # noqa: E731  (2000 test images)
    results["networks"]["elastic_cnn"] = bench_network("elastic_cnn", plugin, X, info, 16, timing, 5, test_images)
    plugin, X, info = ofa_mbv3(n_ofa, resolution)
    random_images = lambda p: p._synthetic(32, 1, 5)[0].numpy()  # noqa: E731  (not the calibration images)
    results["networks"]["ofa_mbv3"] = bench_network("ofa_mbv3", plugin, X, info, 1, timing, 5, random_images)
    results["machine"]["loadavg_end"] = os.getloadavg()
    results["machine"]["caveat"] = busy_caveat(results["machine"])
    results["wall_s"] = time.perf_counter() - t_start
    out = RESULTS / "latency.json"
    out.write_text(json.dumps(results, indent=1))
    plot(results, RESULTS / "latency.png")
    log(f"wrote {out} and latency.png in {results['wall_s']:.0f} s")
    for name, res in results["networks"].items():
        print(f"\n{name} ({res['subnetworks']} sub-networks, batch {res['batch_size']}):")
        for b, s in res["summary"].items():
            print(f"  {b:14s} cv {s['cv_median']:6.1%} (max {s['cv_max']:6.1%}), repeat cv {s['repeat_cv_median']:6.1%}, "
                  f"cpu-time cv {s['cpu_cv_median']:6.1%} / repeat {s['cpu_repeat_cv_median']:6.1%}, "
                  + ", ".join(f"{k.removesuffix('_median')} {v:.3f}s" for k, v in s.items() if k.endswith("_s_median")))
        print("  tau vs onnxruntime: " + ", ".join(f"{b} {res['kendall_tau']['onnxruntime'][b]:.2f}"
                                                   for b in res["kendall_tau"] if b != "onnxruntime"))
        print("  tau vs onnxruntime (cpu time): " + ", ".join(
            f"{b} {res['kendall_tau_cpu_time']['onnxruntime'][b]:.2f}" for b in res["kendall_tau"] if b != "onnxruntime"))
        print(f"  int8 vs fp32: {res['int8_vs_fp32_median']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
