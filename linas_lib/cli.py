"""`linas` command line: search, measure and export in-process.

The Kubeflow commands (`linas pipeline ...`, `linas cluster ...`) live in `pipelines.cli`
and come in through the entry-point group `linas.commands`, as any command group another
package adds: the core imports nothing of Kubeflow. A group's parser is built only when
the command line names it, and the commands import what they need, so `linas --help` and
a config check stay fast (no torch, pandas, scikit-learn or kfp).
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any, Callable

from linas_lib.extras import MissingExtraError

COMMANDS_GROUP = "linas.commands"
# Command groups that optional parts of LINAS add: their line in `linas --help`, and the
# extra that installs them, named when one is missing.
OPTIONAL_GROUPS = {
    "pipeline": ("compile, run or submit the Kubeflow pipeline", "kubeflow"),
    "cluster": ("cluster tools: can the targets be scheduled?", "kubeflow"),
}
# Built-in groups whose parser's module imports heavy libraries (pandas): built only when named.
LAZY_GROUPS = {
    "predictors": ("predictor tools", "linas_lib.analysis.predictor_quality:add_cli"),
}


def print_result(summary: dict, out: Path) -> None:
    from linas_lib.report import front_as_text

    print()
    print(f"Measured Pareto front ({len(summary['pareto'])} of {summary['evaluations']} measured sub-networks):")
    print(front_as_text(summary))
    print()
    print("hypervolume per iteration: " + ", ".join(f"{v:.4f}" for v in summary["hypervolume"]))
    print(f"report: {out / 'report.html'}")
    from linas_lib.search.core import noisy_warnings

    for line in noisy_warnings(summary):
        print(f"linas: {line}", file=sys.stderr)


def cmd_search(args: argparse.Namespace) -> int:
    from linas_lib.config import load_config

    config = load_config(args.config)  # first: a bad config is reported before the search's imports
    from linas_lib.cache import open_cache
    from linas_lib.messages import warn_if_busy
    from linas_lib.objectives import supernet_measure
    from linas_lib.report import write_reports
    from linas_lib.runs import RunStateError, RunStore
    from linas_lib.search.loop import run_linas, run_validation
    from linas_lib.supernets import load_supernet

    resume = args.resume is not None
    location = str(args.resume if resume else args.out)
    run = RunStore(location)
    if not resume and run.exists() and not run.is_finished() and not args.fresh:
        raise RunStateError(f"{run.uri} holds an unfinished run: resume it with `linas search {args.config} "
                            f"--resume {run.uri}`, or start it over with --fresh (its measurements stay cached)")
    supernet = load_supernet(config.supernet)
    warn_if_busy()
    cache = open_cache(config, location, supernet, config.supernet.checkpoint)
    driver = run_validation if config.search.mode == "validation" else run_linas
    summary = driver(config, supernet.space, supernet_measure(config, supernet, cache), run=run, resume=resume)
    write_reports(run, summary, run.load_measurements())
    print(f"evaluation cache {cache.uri}: {summary['cache']['hits']} hits, {summary['cache']['misses']} misses")
    print_result(summary, Path(run.uri))
    return 0


def cmd_prepare(args: argparse.Namespace) -> int:
    """Train the built-in super-network once into the checkpoint cache (or check the given
    checkpoint). Needs only numpy, pydantic, pyyaml, pymoo (the config check), torch and the
    plugin's data, so `make run` trains while pip installs the rest."""
    from linas_lib.config import load_config

    config = load_config(args.config)
    from linas_lib.supernets import prepare_checkpoint

    print(f"checkpoint: {prepare_checkpoint(config.supernet)}")
    return 0


def cmd_measure(args: argparse.Namespace) -> int:
    from linas_lib.config import load_config

    config = load_config(args.config)
    import secrets

    from linas_lib.deploy import measure_one, parse_subnet
    from linas_lib.report import architecture_text
    from linas_lib.supernets import load_supernet, supernet_space

    random = args.subnet.strip() == "random"
    # a fresh draw each call (not config.seed: that would always pick the same one); printed to repeat it
    seed = args.seed if args.seed is not None else secrets.randbelow(2**31)
    # check the encoding before loading (perhaps training) the super-network
    encoding = parse_subnet(supernet_space(config.supernet.name, **config.supernet.params), args.subnet, seed)
    supernet = load_supernet(config.supernet)
    targets = [t for part in args.targets or [] for t in part.split(",") if t] or None
    rows = measure_one(config, supernet, encoding, targets)
    drawn = f" (random, --seed {seed})" if random else ""
    print(f"sub-network {supernet.space.key(encoding)}{drawn}: {encoding.tolist()}")
    # what it is, as the report writes it: the active genes in the space's order
    print("architecture: " + architecture_text({"architecture": supernet.space.decode(encoding)}))
    size = [f"{rows[0][name]:,.0f} {unit}" for name, unit in (("macs", "MACs per sample"), ("params", "parameters"))
            if rows and rows[0].get(name) is not None]
    if size:
        print("size: " + ", ".join(size))
    columns = ["target", "backend", "precision", "batch", "threads", "latency_ms", "cv", "p90_ms", "cpu_ms",
               "load_1m", supernet.quality_metric, "error"]
    table = [[_cell(r.get(c)) for c in columns] for r in rows]
    widths = [max(len(c), *(len(r[i]) for r in table)) for i, c in enumerate(columns)]
    for line in [columns, ["-" * w for w in widths], *table]:
        print("  ".join(cell.ljust(w) for cell, w in zip(line, widths)).rstrip())
    limit = config.measurement.max_latency_cv
    for r in rows:
        if limit is not None and r.get("cv") is not None and r["cv"] > limit:
            load = f", load average {r['load_1m']:.1f}" if r.get("load_1m") is not None else ""
            print(f"linas: warning: target {r['target']}: latency CV {r['cv']:.0%} stayed above "
                  f"measurement.max_latency_cv {limit:.0%} after re-timing{load}: the host is busy", file=sys.stderr)
    return 1 if any(r["error"] for r in rows) else 0


def _cell(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "" if value is None else str(value)


def cmd_export(args: argparse.Namespace) -> int:
    from linas_lib.deploy import export_subnet

    path = export_subnet(str(args.run_dir), args.subnet, args.format, int8=args.int8, out=args.out)
    print(f"exported {args.subnet} to {path}")
    return 0


CONFIG_HELP = "the LINAS config (YAML), e.g. pipelines/configs/animal_mnist.yaml"


def cmd_lut_build(args: argparse.Namespace) -> int:
    from linas_lib.config import load_config

    config = load_config(args.config)
    from linas_lib.backends.lut import LatencyTable, build_for_target
    from linas_lib.supernets import load_supernet

    target = next((t for t in config.targets if t.name == args.target), None)
    if target is None:
        raise ValueError(f"--target: unknown target {args.target!r}; the config has {[t.name for t in config.targets]}")
    if args.subnets < 0 or args.check < 0:
        raise ValueError("--subnets and --check must be >= 0")
    extend = LatencyTable.load(args.extend) if args.extend else None
    supernet = load_supernet(config.supernet)
    table, cover = build_for_target(supernet, target, args.subnets, args.seed, args.check, args.fit_samples,
                                    extend, progress=print)
    path = table.save(args.out)
    fit = table.meta.get("fit_mape")
    print(f"lut: {len(table.entries)} unit signatures ({table.meta['units_measured']} measured now) on "
          f"{target.backend} ({target.device}, {target.precision}, {target.threads} thread(s), batch "
          f"{target.batch_size}), overhead {table.overhead_ms:.3g} ms"
          + (f", whole-network fit error {fit:.1%}" if fit is not None else "") + f": {path}")
    if cover:
        print(f"lut: coverage of {cover['subnets']} fresh random sub-networks: {cover['share']:.1%} of their "
              f"{cover['units']} distinct units present; {cover['subnets_covered']} of {cover['subnets']} "
              "predictable whole")
        if cover["missing"]:
            listed = "\n  ".join(cover["missing"][:10]) + ("\n  ..." if len(cover["missing"]) > 10 else "")
            print(f"lut: missing units ({len(cover['missing'])}):\n  {listed}\n"
                  f"lut: measure more with --extend {path} --subnets N --seed S (a new seed draws new ones)",
                  file=sys.stderr)
    return 0


def _command_groups() -> dict[str, tuple[str, Callable[[], Callable[[Any], Any]]]]:
    """name -> (help, loader of its `add(subparsers)`) of the groups outside the core parser:
    the lazy built-in ones, then those installed packages declare (a built-in name wins)."""
    from importlib import import_module

    from linas_lib.registry import installed_entry_points

    def reference(spec: str):
        module, _, attr = spec.partition(":")
        return lambda: getattr(import_module(module), attr)

    groups = {name: (help_, reference(spec)) for name, (help_, spec) in LAZY_GROUPS.items()}
    for ep in installed_entry_points(COMMANDS_GROUP):
        help_ = OPTIONAL_GROUPS.get(ep.name, (f"commands from {ep.value.partition(':')[0]}",))[0]
        groups.setdefault(ep.name, (help_, ep.load))
    return groups


def _command(argv: list[str]) -> str | None:
    """The command the command line names (the top-level parser has no options but --help)."""
    return next((a for a in argv if not a.startswith("-")), None)


def build_parser(argv: list[str] | None = None, groups: dict | None = None) -> argparse.ArgumentParser:
    """The `linas` parser; with `argv`, only the command group it names is built in full
    (the others are a line of help), so no group's module is imported for another's sake."""
    parser = argparse.ArgumentParser(prog="linas", description="Lightweight Iterative NAS on Kubeflow Pipelines")
    sub = parser.add_subparsers(dest="command", required=True)

    search = sub.add_parser("search", help="run a search in this process")
    search.add_argument("config", type=Path, help=CONFIG_HELP)
    where = search.add_mutually_exclusive_group(required=True)
    # plain strings: Path would fold s3://bucket into s3:/bucket
    where.add_argument("-o", "--out",
                       help="run directory or s3:// URI (a finished run there seeds a recurring re-search)")
    where.add_argument("--resume", metavar="RUN_DIR", help="continue a killed run from its last step")
    search.add_argument("--fresh", action="store_true", help="start over where an unfinished run lies")
    search.set_defaults(func=cmd_search)

    prepare = sub.add_parser("prepare", help="train the config's built-in super-network once into the "
                                             "checkpoint cache (LINAS_CACHE), or check its checkpoint")
    prepare.add_argument("config", type=Path, help=CONFIG_HELP)
    prepare.set_defaults(func=cmd_prepare)

    measure = sub.add_parser("measure", help="measure one sub-network on every listed target")
    measure.add_argument("config", type=Path, help=CONFIG_HELP)
    measure.add_argument("--subnet", default="random",
                         help="'random' (a fresh draw each call), or gene indices as JSON or comma-separated")
    measure.add_argument("--seed", type=int, help="seed of --subnet random, to draw the same one again")
    measure.add_argument("--targets", nargs="*", help="target names (default: all of the config's)")
    measure.set_defaults(func=cmd_measure)

    export = sub.add_parser("export", help="write a measured sub-network as a deployable model")
    export.add_argument("run_dir", type=Path, help="a run directory (from `linas search` or `linas pipeline run`)")
    export.add_argument("--subnet", required=True, help="sub-network id from the run's measurements")
    export.add_argument("--format", choices=["onnx", "openvino"], default="onnx",
                        help="ONNX (FP32), or OpenVINO IR (FP32 weights, or INT8 with --int8); default onnx")
    export.add_argument("--int8", action="store_true", help="OpenVINO INT8 via NNCF post-training quantization")
    export.add_argument("-o", "--out", help="output folder (default: RUN_DIR/exports)")
    export.set_defaults(func=cmd_export)

    lut = sub.add_parser("lut", help="latency lookup tables").add_subparsers(dest="action", required=True)
    lut_build = lut.add_parser("build", help="measure every unit of some sub-networks with a target's backend "
                                             "into a table the lut backend predicts from")
    lut_build.add_argument("config", type=Path, help=CONFIG_HELP)
    lut_build.add_argument("--target", required=True, metavar="T",
                           help="the config's target whose backend measures (its device, precision, threads "
                                "and batch size are the table's)")
    lut_build.add_argument("-o", "--out", required=True, metavar="TABLE", help="the table to write (JSON)")
    lut_build.add_argument("--subnets", type=int, default=30,
                           help="random sub-networks whose units are measured, besides the smallest and "
                                "largest (default 30)")
    lut_build.add_argument("--seed", type=int, default=0, help="seed of those sub-networks (default 0)")
    lut_build.add_argument("--check", type=int, default=20,
                           help="fresh random sub-networks the coverage is reported on (default 20; 0: none)")
    lut_build.add_argument("--fit-samples", type=int, default=5,
                           help="sub-networks also measured whole, to fit the constant overhead (default 5)")
    lut_build.add_argument("--extend", metavar="TABLE",
                           help="an existing table (from the same machine and backend) to add units to")
    lut_build.set_defaults(func=cmd_lut_build)

    groups = _command_groups() if groups is None else groups
    command = None if argv is None else _command(argv)
    for name, (help_, load) in groups.items():
        if name in sub.choices:  # an installed group never shadows a core command
            continue
        if argv is None or name == command:
            load()(sub)
        else:
            sub.add_parser(name, help=help_, add_help=False)
    for name, (help_, extra) in OPTIONAL_GROUPS.items():
        if name not in groups:
            sub.add_parser(name, help=f"{help_} (not installed: pip install 'linas[{extra}]')", add_help=False)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    groups = _command_groups()
    command = _command(argv)
    if command in OPTIONAL_GROUPS and command not in groups:
        print(f"linas: {MissingExtraError(f'`linas {command}`', OPTIONAL_GROUPS[command][1])}", file=sys.stderr)
        return 2
    args = build_parser(argv, groups).parse_args(argv)
    from linas_lib.config import ConfigError  # after parsing: `linas --help` never imports the config model
    from linas_lib.messages import new_command

    new_command()

    try:
        return args.func(args)
    except (ConfigError, MissingExtraError) as exc:
        print(f"linas: {exc}", file=sys.stderr)
        return 2
    except _user_errors() + tuple(getattr(args, "user_errors", ())) as exc:
        if os.environ.get("LINAS_DEBUG"):
            raise
        print(f"linas: {exc}", file=sys.stderr)
        return 1


def _user_errors() -> tuple[type[BaseException], ...]:
    """Errors whose message is the whole story: print it, no traceback. A command group adds
    its own with set_defaults(user_errors=...)."""
    from linas_lib.api.store import StoreError

    errors: tuple[type[BaseException], ...] = (StoreError, FileNotFoundError, KeyError, ValueError)
    try:  # pandas: absent while `make run` trains beside the install (`linas prepare`)
        from linas_lib.measurements import IterationFailedError
        from linas_lib.runs import RunStateError
    except ImportError:
        return errors
    return errors + (RunStateError, IterationFailedError)


if __name__ == "__main__":
    sys.exit(main())
