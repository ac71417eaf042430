"""Latency lookup tables (as OFA's Note10 tables): measured on one machine, shipped to predict there.

A sub-network is cut into *units*: the root module's children, descending through
containers (Sequential, ModuleList, ModuleDict); inside a Sequential a Conv/Linear
is fused with the BatchNorm/activation layers that follow it (runtimes fuse them
too); any other module (e.g. an MBConv block) is one unit. A unit's *signature* is
its type and configuration (normalized `extra_repr` of it and its children, or the
module's own `lut_signature()`) plus the shapes of its inputs (batch included).

`build_table` measures every distinct unit of some sub-networks standalone with a
reachable backend, subtracts the per-call overhead of that backend and fits one
constant overhead against a few directly measured sub-networks. The `lut` backend
then predicts a sub-network's latency as the sum of its units' entries plus that
constant: hardware that cannot be reached from here is served by a table measured
there (fingerprint: backend "lut", `table_source` = where the table was measured).
"""
from __future__ import annotations

import copy
import hashlib
import json
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np

from linas_lib.backends import backend_registry
from linas_lib.backends.base import Backend, Prepared
from linas_lib.backends.timing import LatencyResult, as_tuple, batch_size_of, cpu_model

LUT_FORMAT = "linas-lut/1"
TABLE_ENV = "LINAS_LUT_TABLE"


class MissingLayerError(KeyError):
    """A sub-network holds units the table has no entry for."""

    def __str__(self) -> str:
        return str(self.args[0])


# ---- cutting a module into units ----------------------------------------------
def _fuse_kinds():
    from torch import nn

    heads = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose2d, nn.Linear)
    tails = (
        nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.ReLU, nn.ReLU6, nn.Hardswish, nn.Hardsigmoid,
        nn.SiLU, nn.GELU, nn.Sigmoid, nn.Tanh, nn.LeakyReLU, nn.Identity,
    )
    return heads, tails


def _is_container(module) -> bool:
    from torch import nn

    return isinstance(module, (nn.Sequential, nn.ModuleList, nn.ModuleDict))


def unit_groups(module) -> list[list[Any]]:
    """The module's units, each a list of modules run one after the other."""
    from torch import nn

    heads, tails = _fuse_kinds()

    def walk(m, root: bool) -> list[list[Any]]:
        children = list(m.children())
        if not children:
            return [[m]]
        if isinstance(m, nn.Sequential):
            out, i = [], 0
            while i < len(children):
                c = children[i]
                i += 1
                if _is_container(c):
                    out += walk(c, False)
                    continue
                group = [c]
                if isinstance(c, heads):
                    while i < len(children) and isinstance(children[i], tails):
                        group.append(children[i])
                        i += 1
                out.append(group)
            return out
        if root or _is_container(m):
            out = []
            for c in children:
                out += walk(c, False) if _is_container(c) or not list(c.children()) else [[c]]
            return out
        return [[m]]

    return walk(module, True)


_VOLATILE = re.compile(r"\b(momentum|inplace|track_running_stats|eps)=[^,()]*(,\s*|$)")


def describe(module) -> str:
    """Type and latency-relevant configuration of a module and its children."""
    own = getattr(module, "lut_signature", None)
    if callable(own):
        return str(own())
    extra = _VOLATILE.sub("", module.extra_repr()).strip().rstrip(",").strip()
    text = f"{type(module).__name__}({extra})"
    children = [describe(c) for c in module.children()]
    return text + (f"[{','.join(children)}]" if children else "")


@dataclass(frozen=True)
class Unit:
    signature: str
    modules: tuple
    shapes: tuple[tuple[int, ...], ...]
    dtypes: tuple[str, ...]

    def standalone(self):
        """A copy of the unit as one module, and random inputs of its recorded shapes."""
        import torch
        from torch import nn

        mods = [copy.deepcopy(m) for m in self.modules]
        module = (mods[0] if len(mods) == 1 else nn.Sequential(*mods)).eval()
        gen = torch.Generator().manual_seed(0)
        inputs = tuple(
            torch.randn(s, generator=gen, dtype=getattr(torch, d)) if getattr(torch, d).is_floating_point
            else torch.zeros(s, dtype=getattr(torch, d))
            for s, d in zip(self.shapes, self.dtypes)
        )
        return module, inputs


def trace_units(module, example_inputs) -> list[Unit]:
    """The units a forward pass of `module` on `example_inputs` runs, in call order (repeats kept)."""
    import torch

    groups = unit_groups(module)
    calls: list[Unit] = []
    handles = []
    described = {id(g[0]): " + ".join(describe(m) for m in g) for g in groups}

    def hook_for(group):
        def hook(mod, args):
            tensors = [a for a in args if isinstance(a, torch.Tensor)]
            if len(tensors) != len(args) or not tensors:
                raise TypeError(
                    f"lut: unit {described[id(group[0])]} is called with non-tensor arguments; "
                    "give the module a lut_signature() and wrap it so that it takes tensors only"
                )
            shapes = tuple(tuple(int(d) for d in t.shape) for t in tensors)
            dtypes = tuple(str(t.dtype).removeprefix("torch.") for t in tensors)
            sig = f"{described[id(group[0])]} @ in=" + ";".join("x".join(map(str, s)) for s in shapes)
            calls.append(Unit(sig, tuple(group), shapes, dtypes))

        return hook

    for g in groups:
        handles.append(g[0].register_forward_pre_hook(hook_for(g)))
    try:
        with torch.no_grad():
            module.eval()(*as_tuple(example_inputs))
    finally:
        for h in handles:
            h.remove()
    return calls


# ---- the table ----------------------------------------------------------------------
@dataclass
class LatencyTable:
    entries: dict[str, dict]  # signature -> {"ms", "measured_ms", "cv", "p90_ms"}
    overhead_ms: float  # fitted constant added to every prediction
    source: dict  # fingerprint of the backend/machine that measured the table
    call_overhead_ms: float = 0.0  # per-call cost of the source backend, subtracted from each entry
    meta: dict = field(default_factory=dict)
    path: str | None = None

    def to_dict(self) -> dict:
        return {
            "format": LUT_FORMAT, "source": self.source, "overhead_ms": self.overhead_ms,
            "call_overhead_ms": self.call_overhead_ms, "meta": self.meta, "entries": self.entries,
        }

    def digest(self) -> str:
        return hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()[:16]

    def save(self, path: str | os.PathLike[str]) -> str:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_text(json.dumps(self.to_dict(), indent=1, sort_keys=True))
        os.replace(tmp, path)
        self.path = str(path)
        return str(path)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> "LatencyTable":
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"lut: latency table {str(path)!r} does not exist")
        try:
            data = json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise ValueError(f"lut: latency table {str(path)!r} is not valid JSON: {exc}") from None
        if not isinstance(data, dict) or data.get("format") != LUT_FORMAT:
            found = data.get("format") if isinstance(data, dict) else type(data).__name__
            raise ValueError(f"lut: {str(path)!r} is not a {LUT_FORMAT} latency table (format: {found!r})")
        return cls(
            entries=data["entries"], overhead_ms=float(data["overhead_ms"]), source=data["source"],
            call_overhead_ms=float(data.get("call_overhead_ms", 0.0)), meta=data.get("meta", {}), path=str(path),
        )

    def missing(self, units: Iterable[Unit]) -> list[str]:
        return sorted({u.signature for u in units if u.signature not in self.entries})

    def predict_units(self, units: Sequence[Unit]) -> tuple[float, float, float]:
        """(median, cv, p90) in ms for a sub-network made of `units`."""
        missing = self.missing(units)
        if missing:
            listed = "\n  ".join(missing)
            raise MissingLayerError(
                f"lut: the table (measured on {self.source.get('backend')} / {self.source.get('cpu_model')}"
                f"{', ' + self.path if self.path else ''}) has no entry for {len(missing)} unit signature(s) of "
                f"this sub-network ({len(set(u.signature for u in units)) - len(missing)} present); measure them on "
                "the machine the table is for: `linas lut build CONFIG --target T --out TABLE --extend TABLE` "
                f"(more --subnets cover more of the space):\n  {listed}"
            )
        rows = [self.entries[u.signature] for u in units]
        # never below one call of the source backend: a noisy fit must not give a negative latency
        median = max(sum(r["ms"] for r in rows) + self.overhead_ms, self.call_overhead_ms, 1e-6)
        spread = float(np.sqrt(sum((r.get("cv", 0.0) * r.get("measured_ms", r["ms"])) ** 2 for r in rows)))
        p90 = sum(max(r.get("p90_ms", r["ms"]) - self.call_overhead_ms, r["ms"]) for r in rows) + self.overhead_ms
        return median, (spread / median if median > 0 else float("nan")), p90

    def predict(self, module, example_inputs) -> float:
        return self.predict_units(trace_units(module, example_inputs))[0]


def _calibration_for(backend, inputs: tuple) -> list | None:
    return [inputs, inputs] if getattr(backend, "needs_calibration", False) else None


def build_table(
    supernet,
    encodings: Iterable[Any],
    backend,
    batch_size: int = 1,
    fit_samples: int = 5,
    table: LatencyTable | None = None,
    progress: bool | Callable[[str], None] = False,
) -> LatencyTable:
    """Measure every distinct unit of the sub-networks `encodings` with `backend`.

    `supernet` needs `export_module(encoding, batch_size)`. Up to `fit_samples`
    sub-networks (spread over `encodings`) are also measured whole to fit the
    constant overhead. Pass an existing `table` to extend it (only new signatures
    are measured; its call overhead is re-measured and must come from the same backend).
    """
    say = progress if callable(progress) else (print if progress else (lambda _msg: None))
    encodings = list(encodings)
    if not encodings:
        raise ValueError("lut: build_table needs at least one encoding")
    fit_idx = set(np.linspace(0, len(encodings) - 1, min(fit_samples, len(encodings))).round().astype(int).tolist())
    entries: dict[str, dict] = dict(table.entries) if table else {}
    new_units: dict[str, Unit] = {}
    fits: list[tuple[list[Unit], LatencyResult]] = []
    t0 = time.perf_counter()
    for i, encoding in enumerate(encodings):
        module, inputs = supernet.export_module(encoding, batch_size)
        inputs = as_tuple(inputs)
        units = trace_units(module, inputs)
        for u in units:
            if u.signature not in entries:
                new_units.setdefault(u.signature, u)
        if i in fit_idx:
            calibration = None
            if getattr(backend, "needs_calibration", False):
                calibration = (supernet.calibration_inputs(batch_size, 2) if hasattr(supernet, "calibration_inputs")
                               else _calibration_for(backend, inputs))
            fits.append((units, backend.measure(module, inputs, calibration)))
    say(f"lut: {len(new_units)} new unit signature(s) from {len(encodings)} sub-network(s)")

    import torch

    probe = torch.nn.ReLU()
    probe_inputs = (torch.randn(batch_size, 8),)
    call = backend.measure(probe, probe_inputs, _calibration_for(backend, probe_inputs))
    source = {k: v for k, v in call.fingerprint.items()}
    if table is not None:
        keys = ("backend", "backend_version", "cpu_model", "device", "precision", "threads")
        diff = {k: (table.source.get(k), source.get(k)) for k in keys if table.source.get(k) != source.get(k)}
        if diff:
            raise ValueError(f"lut: cannot extend a table measured elsewhere; differing fields (table, now): {diff}")
    for n, (sig, unit) in enumerate(sorted(new_units.items())):
        module, inputs = unit.standalone()
        r = backend.measure(module, inputs, _calibration_for(backend, inputs))
        entries[sig] = {"ms": max(r.median_ms - call.median_ms, 0.0), "measured_ms": r.median_ms, "cv": r.cv,
                        "p90_ms": r.p90_ms}
        if (n + 1) % 25 == 0:
            say(f"lut: measured {n + 1}/{len(new_units)} units")
    partial = LatencyTable(entries, 0.0, source, call.median_ms)
    residuals = [r.median_ms - partial.predict_units(units)[0] for units, r in fits]
    # a constant overhead is never negative; under load a negative median residual is noise
    overhead = max(float(np.median(residuals)), 0.0) if residuals else call.median_ms
    fit_rows = [{"direct_ms": r.median_ms, "predicted_ms": partial.predict_units(u)[0] + overhead} for u, r in fits]
    meta = {
        "supernet": getattr(supernet, "name", None) or type(supernet).__name__,
        "batch_size": int(batch_size),
        "subnetworks": len(encodings),
        "units_measured": len(new_units),
        "fit": fit_rows,
        "fit_mape": float(np.mean([abs(f["predicted_ms"] / f["direct_ms"] - 1) for f in fit_rows])) if fit_rows else None,
        "build_s": time.perf_counter() - t0,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    if table is not None:
        meta["extended_from"] = table.digest()
    return LatencyTable(entries, overhead, source, call.median_ms, meta)


def coverage(table: LatencyTable, supernet, encodings: Iterable[Any], batch_size: int) -> dict[str, Any]:
    """How much of some sub-networks (typically fresh random ones) the table covers:
    `share` is the share of their distinct unit signatures present, `subnets_covered`
    how many of them it can predict whole, `missing` the absent signatures."""
    distinct: set[str] = set()
    missing: set[str] = set()
    n = covered = 0
    for encoding in encodings:
        module, inputs = supernet.export_module(encoding, batch_size)
        signatures = {u.signature for u in trace_units(module, inputs)}
        absent = {sig for sig in signatures if sig not in table.entries}
        distinct |= signatures
        missing |= absent
        n += 1
        covered += not absent
    share = (len(distinct) - len(missing)) / len(distinct) if distinct else float("nan")
    return {"subnets": n, "subnets_covered": covered, "units": len(distinct), "units_present": len(distinct) - len(missing),
            "share": share, "missing": sorted(missing)}


def build_for_target(
    supernet, target, subnets: int = 30, seed: int = 0, check: int = 20, fit_samples: int = 5,
    table: LatencyTable | None = None, progress: bool | Callable[[str], None] = False,
) -> tuple[LatencyTable, dict[str, Any]]:
    """`linas lut build`: a table for `target` (a TargetConfig whose backend measures) from
    the space's anchors plus `subnets` random sub-networks, and its coverage of `check`
    fresh random ones (also kept in the table's meta)."""
    from linas_lib.backends import backend_class, build_backend

    if not backend_class(target.backend).timed:
        raise ValueError(
            f"lut build: target {target.name!r} uses the {target.backend} backend, which looks latencies up; "
            "name a target whose backend measures (onnxruntime, torch, openvino) with the settings of the "
            "machine the table is for")
    space = supernet.space
    anchors = space.anchors()
    X = np.vstack([anchors, space.sample(subnets, seed, exclude=set(space.keys(anchors)))]) if len(anchors) \
        else space.sample(subnets, seed)
    if not len(X):
        raise ValueError("lut build: --subnets must be at least 1 for a space without anchors")
    backend = build_backend(target.backend, **target.backend_params())
    built = build_table(supernet, X, backend, batch_size=target.batch_size, fit_samples=fit_samples, table=table,
                        progress=progress)
    fresh = space.sample(check, np.random.SeedSequence([seed, 1]), exclude=set(space.keys(X))) if check else X[:0]
    report = coverage(built, supernet, fresh, target.batch_size) if len(fresh) else {}
    built.meta.update(target=target.name, subnets_seed=seed, coverage={k: v for k, v in report.items()
                                                                         if k != "missing"})
    return built, report


def _not_runnable(*_args, **_kwargs):
    raise NotImplementedError("lut backend: it estimates latency from a table and has no runnable model")


# ---- the backend -------------------------------------------------------------------
@backend_registry.register("lut")
class LutBackend(Backend):
    """Predicts latency from a shipped table (`table=` path/LatencyTable, or $LINAS_LUT_TABLE)."""

    name = "lut"
    devices = ("cpu", "cuda")
    precisions = ("fp32", "int8")
    timed = False  # a prediction: timing it again gives the same number

    def __init__(self, table: str | os.PathLike[str] | LatencyTable | None = None, **params):
        super().__init__(**params)
        self.table: LatencyTable | None = None
        table = table if table is not None else os.environ.get(TABLE_ENV) or None
        if table is not None:
            self.set_table(table)

    @property
    def needs_calibration(self) -> bool:  # the table was measured (and quantized) elsewhere
        return False

    def set_table(self, table: str | os.PathLike[str] | LatencyTable) -> None:
        self.table = table if isinstance(table, LatencyTable) else LatencyTable.load(table)

    def _checked_table(self) -> LatencyTable:
        if self.table is None:
            raise ValueError(
                f"lut backend: no latency table; pass table=PATH, set ${TABLE_ENV}, or call set_table() "
                "(build one with linas_lib.backends.lut.build_table on the target machine)"
            )
        src = self.table.source
        wanted = {"device": self.device, "precision": self.precision, "threads": self.threads}
        diff = {k: f"target {v!r} vs table {src.get(k)!r}" for k, v in wanted.items() if src.get(k) != v}
        if diff:
            raise ValueError(f"lut backend: the table was measured under other settings: {diff}")
        return self.table

    @classmethod
    def cache_key_extra(cls, params: dict[str, Any]) -> dict[str, Any]:
        """The table's digest: a rebuilt or extended table at the same path predicts anew."""
        table = params.get("table") or os.environ.get(TABLE_ENV)
        if not table:
            return {}
        return {"table_digest": (table if isinstance(table, LatencyTable) else LatencyTable.load(table)).digest()}

    def prepare(self, module, example_inputs=(), calibration=None) -> Prepared:
        """The sub-network's units, checked against the table (a missing unit fails here,
        naming it); `time()` sums their entries."""
        table = self._checked_table()
        units = trace_units(module, example_inputs)
        table.predict_units(units)
        src = table.source
        fp = {
            **{k: src.get(k) for k in ("cpu_model", "cpu_count", "machine", "accelerator", "device", "precision",
                                        "threads")},
            "backend": "lut",
            "backend_version": LUT_FORMAT,
            "batch_size": batch_size_of(example_inputs),
            "table_source": dict(src),
            "table_digest": table.digest(),
            "table": table.path,
            "estimated_on": cpu_model(),
        }
        return Prepared(call=lambda: None, runner=_not_runnable, fingerprint=fp, artifact=units)

    def time(self, prepared: Prepared) -> LatencyResult:
        t0 = time.perf_counter()
        table = self._checked_table()
        median, cv, p90 = table.predict_units(prepared.artifact)
        self.last_timings_s = {"export_s": 0.0, "compile_s": 0.0, "measure_s": time.perf_counter() - t0}
        return LatencyResult(median, cv, p90, len(table.entries), dict(prepared.fingerprint))

    def measure(self, module, example_inputs, calibration=None) -> LatencyResult:
        return self.time(self.prepare(module, example_inputs))

    def compiled_runner(self, *args, **kwargs):
        _not_runnable()
