"""`linas` command line: search in-process, or compile/run the Kubeflow pipeline."""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from linas_lib.config import ConfigError, load_config


def _print_result(summary: dict, out: Path) -> None:
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
    from linas_lib.cache import open_cache
    from linas_lib.objectives import supernet_measure
    from linas_lib.report import write_reports
    from linas_lib.runs import RunStateError, RunStore
    from linas_lib.search.loop import run_linas, run_validation
    from linas_lib.supernets import load_supernet

    config = load_config(args.config)
    resume = args.resume is not None
    location = str(args.resume if resume else args.out)
    run = RunStore(location)
    if not resume and run.exists() and not run.is_finished() and not args.fresh:
        raise RunStateError(f"{run.uri} holds an unfinished run: resume it with `linas search {args.config} "
                            f"--resume {run.uri}`, or start it over with --fresh (its measurements stay cached)")
    supernet = load_supernet(config.supernet)
    cache = open_cache(config, location, supernet, config.supernet.checkpoint)
    driver = run_validation if config.search.mode == "validation" else run_linas
    summary = driver(config, supernet.space, supernet_measure(config, supernet, cache), run=run, resume=resume)
    write_reports(run, summary, run.load_measurements())
    print(f"evaluation cache {cache.uri}: {summary['cache']['hits']} hits, {summary['cache']['misses']} misses")
    _print_result(summary, Path(run.uri))
    return 0


def cmd_pipeline_compile(args: argparse.Namespace) -> int:
    from pipelines.linas_pipeline import compile_pipeline

    config = load_config(args.config)
    path = compile_pipeline(config, str(args.output))
    print(f"compiled {config.search.iterations} LINAS iterations into {path} ({Path(path).stat().st_size / 1024:.0f} KiB)")
    return 0


def cmd_pipeline_run(args: argparse.Namespace) -> int:
    from linas_lib.runs import RunStore
    from linas_lib.supernets import prepare_checkpoint
    from pipelines.local import run_local

    # always local (kfp.local): a cluster run is `linas pipeline submit`; --local stays accepted
    config = load_config(args.config)
    checkpoint = prepare_checkpoint(config.supernet)
    out = run_local(config, str(args.out), checkpoint=checkpoint)
    _print_result(RunStore(str(out)).load_summary(), out)
    return 0


def _run_arguments(args: argparse.Namespace) -> dict:
    """Pipeline run parameters given on the command line (KEY=VALUE, JSON values)."""
    import json

    arguments = {}
    for item in args.param or []:
        key, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"linas: --param expects KEY=VALUE, got {item!r}")
        try:
            arguments[key] = json.loads(value)
        except json.JSONDecodeError:
            arguments[key] = value
    if args.store:
        arguments["store_uri"] = args.store
    from linas_lib.config import check_location

    for key in ("store_uri", "checkpoint"):  # run parameters are as visible as the compiled config
        if isinstance(arguments.get(key), str):
            try:
                check_location(arguments[key])
            except ValueError as exc:
                raise ConfigError(f"run parameter {key}: {exc}") from None
    return arguments


def _preflighted(config, args: argparse.Namespace):
    """Run the cluster preflight (unless skipped) and record the nodes' hardware labels."""
    from pipelines.cluster import preflight

    if args.skip_preflight:
        return config
    checks = {c.name: c for c in preflight(config, args.kubeconfig)}
    for name, check in checks.items():
        print(f"preflight: {name}: {len(check.nodes)} node(s) can run it {check.fingerprint or ''}")
    targets = [t.model_copy(update={"node_fingerprint": checks[f"target {t.name}"].fingerprint}).model_dump()
               for t in config.targets]
    return config.with_overrides(targets=targets)


def cmd_pipeline_submit(args: argparse.Namespace) -> int:
    from pipelines.submit import submit_run

    config = _preflighted(load_config(args.config), args)
    result = submit_run(config, args.host, experiment=args.experiment, arguments=_run_arguments(args),
                        namespace=args.namespace)
    print(f"submitted {result.kind} {result.id} in experiment {result.experiment_id}")
    return 0


def cmd_pipeline_schedule(args: argparse.Namespace) -> int:
    from pipelines.submit import schedule_run

    config = _preflighted(load_config(args.config), args)
    result = schedule_run(config, args.host, cron=args.cron, max_concurrency=args.max_concurrency,
                          experiment=args.experiment, arguments=_run_arguments(args), namespace=args.namespace)
    print(f"scheduled {result.kind} {result.id} ({args.cron}) in experiment {result.experiment_id}")
    return 0


def cmd_cluster_check(args: argparse.Namespace) -> int:
    from pipelines.cluster import check_placements, list_nodes

    config = load_config(args.config)
    checks = check_placements(config, list_nodes(args.kubeconfig))
    for check in checks:
        status = "ok" if check.ok else "UNSCHEDULABLE"
        print(f"{check.name}: {status}; nodes: {', '.join(check.nodes) or '-'}; hardware: {check.fingerprint or '-'}")
        if not check.ok:
            for node, reason in sorted(check.reasons.items()):
                print(f"    {node}: {reason}")
    return 0 if all(c.ok for c in checks) else 1


def cmd_measure(args: argparse.Namespace) -> int:
    import secrets

    from linas_lib.deploy import measure_one, parse_subnet
    from linas_lib.supernets import load_supernet, supernet_space

    config = load_config(args.config)
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
    from linas_lib.backends.lut import LatencyTable, build_for_target
    from linas_lib.supernets import load_supernet

    config = load_config(args.config)
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="linas", description="Lightweight Iterative NAS on Kubeflow Pipelines")
    sub = parser.add_subparsers(dest="command", required=True)

    search = sub.add_parser("search", help="run a search in this process")
    search.add_argument("config", type=Path, help=CONFIG_HELP)
    where = search.add_mutually_exclusive_group(required=True)
    # plain strings: Path would fold s3://bucket into s3:/bucket
    where.add_argument("--out", help="run directory or s3:// URI (a finished run there seeds a recurring re-search)")
    where.add_argument("--resume", metavar="RUN_DIR", help="continue a killed run from its last step")
    search.add_argument("--fresh", action="store_true", help="start over where an unfinished run lies")
    search.set_defaults(func=cmd_search)

    pipeline = sub.add_parser("pipeline", help="compile or run the KFP pipeline").add_subparsers(dest="action", required=True)
    compile_ = pipeline.add_parser("compile", help="compile the pipeline to a KFP package (YAML)")
    compile_.add_argument("config", type=Path, help=CONFIG_HELP)
    compile_.add_argument("-o", "--output", type=Path, required=True, metavar="FILE.yaml",
                          help="the package to write (its folder is created)")
    compile_.set_defaults(func=cmd_pipeline_compile)

    run = pipeline.add_parser("run", help="run the pipeline locally with kfp.local")
    run.add_argument("config", type=Path, help=CONFIG_HELP)
    run.add_argument("--local", action="store_true",
                     help="execute with kfp.local's SubprocessRunner (the default and only choice: "
                          "a cluster run is `linas pipeline submit`)")
    run.add_argument("--out", type=Path, required=True, help="run directory")
    run.set_defaults(func=cmd_pipeline_run)

    def remote(p: argparse.ArgumentParser) -> None:
        p.add_argument("config", type=Path, help=CONFIG_HELP)
        p.add_argument("--host", required=True, help="KFP API endpoint, e.g. http://ml-pipeline-ui.kubeflow")
        p.add_argument("--experiment", help="experiment name (created when missing; default: the config's name)")
        p.add_argument("--namespace", help="namespace where the run executes: the Kubeflow profile namespace in "
                                           "multi-user installs (default: cluster.namespace, else KFP's)")
        p.add_argument("--store", help="store_uri run parameter, e.g. s3://linas/runs/nightly")
        p.add_argument("--param", action="append", metavar="KEY=VALUE", help="a pipeline run parameter")
        p.add_argument("--kubeconfig", help="kubeconfig for the preflight (default: in-cluster or ~/.kube/config)")
        p.add_argument("--skip-preflight", action="store_true", help="do not check the node pools first")

    submit = pipeline.add_parser("submit", help="compile and create a run on a Kubeflow Pipelines endpoint")
    remote(submit)
    submit.set_defaults(func=cmd_pipeline_submit)

    schedule = pipeline.add_parser("schedule", help="create a recurring run (re-search on a cron schedule)")
    remote(schedule)
    schedule.add_argument("--cron", required=True, help="6 fields, seconds first: '0 0 3 * * 1' = Mondays 03:00")
    schedule.add_argument("--max-concurrency", type=int, default=1, help="recurring runs at once (default 1)")
    schedule.set_defaults(func=cmd_pipeline_schedule)

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
    export.add_argument("--out", help="output folder (default: RUN_DIR/exports)")
    export.set_defaults(func=cmd_export)

    lut = sub.add_parser("lut", help="latency lookup tables").add_subparsers(dest="action", required=True)
    lut_build = lut.add_parser("build", help="measure every unit of some sub-networks with a target's backend "
                                             "into a table the lut backend predicts from")
    lut_build.add_argument("config", type=Path, help=CONFIG_HELP)
    lut_build.add_argument("--target", required=True, metavar="T",
                           help="the config's target whose backend measures (its device, precision, threads "
                                "and batch size are the table's)")
    lut_build.add_argument("--out", required=True, metavar="TABLE", help="the table to write (JSON)")
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

    from linas_lib.analysis.predictor_quality import add_cli as add_predictor_quality

    add_predictor_quality(sub)

    cluster = sub.add_parser("cluster", help="cluster tools").add_subparsers(dest="action", required=True)
    check = cluster.add_parser("check", help="can every hardware target be scheduled on the cluster's nodes?")
    check.add_argument("config", type=Path, help=CONFIG_HELP)
    check.add_argument("--kubeconfig", help="kubeconfig to read the nodes with (default: in-cluster or ~/.kube/config)")
    check.set_defaults(func=cmd_cluster_check)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except ConfigError as exc:
        print(f"linas: {exc}", file=sys.stderr)
        return 2
    except _user_errors() as exc:
        if os.environ.get("LINAS_DEBUG"):
            raise
        print(f"linas: {exc}", file=sys.stderr)
        return 1


def _user_errors() -> tuple[type[BaseException], ...]:
    """Errors whose message is the whole story: print it, no traceback."""
    from linas_lib.api.store import StoreError
    from pipelines.cluster import PreflightError
    from pipelines.submit import SubmitError

    from linas_lib.measurements import IterationFailedError
    from linas_lib.runs import RunStateError

    return (StoreError, RunStateError, IterationFailedError, PreflightError, SubmitError, FileNotFoundError,
            KeyError, ValueError)


if __name__ == "__main__":
    sys.exit(main())
