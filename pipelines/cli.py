"""The Kubeflow commands of `linas`: `linas pipeline ...` and `linas cluster ...`.

The core CLI (`linas_lib.cli`) knows nothing of Kubeflow: it finds these two command
groups through the entry points `linas.commands` this package declares, and builds
them only when the command line names them. Importing this module needs no Kubeflow
package; each command checks for what it needs (the `kubeflow` extra) and says how to
install it.
"""
from __future__ import annotations

import argparse
import functools
from pathlib import Path

from linas_lib.cli import CONFIG_HELP, print_result
from linas_lib.extras import require
from pipelines.cluster import PreflightError
from pipelines.submit import SubmitError

USER_ERRORS = (PreflightError, SubmitError)  # their message is the whole story: no traceback


def _needs(*modules: str):
    """The command runs only where `modules` (of the kubeflow extra) are importable."""

    def decorate(command):
        @functools.wraps(command)
        def run(args: argparse.Namespace) -> int:
            require("kubeflow", f"`linas {args.command} {args.action}`", modules)
            return command(args)

        return run

    return decorate


KFP = ("kfp", "kfp.kubernetes")


def _load(path: str):
    """The config, its core and its Kubernetes side checked at once: a bad placement is
    reported before anything is compiled, run or sent."""
    from linas_lib.config import load_config
    from pipelines.placement import deployment

    config = load_config(path)
    deployment(config)
    return config


# ---- linas pipeline ---------------------------------------------------------------------
@_needs(*KFP)
def cmd_pipeline_compile(args: argparse.Namespace) -> int:
    from pipelines.linas_pipeline import compile_pipeline

    config = _load(args.config)
    path = compile_pipeline(config, str(args.output))
    print(f"compiled {config.search.iterations} LINAS iterations into {path} ({Path(path).stat().st_size / 1024:.0f} KiB)")
    return 0


@_needs(*KFP)
def cmd_pipeline_run(args: argparse.Namespace) -> int:
    from linas_lib.api.store import get_json
    from linas_lib.messages import warn_if_busy
    from linas_lib.runs import RunStore
    from linas_lib.supernets import prepare_checkpoint
    from pipelines.local import TASK_TIMES, run_local, stage_times

    # always local (kfp.local): a cluster run is `linas pipeline submit`; --local stays accepted
    config = _load(args.config)
    checkpoint = prepare_checkpoint(config.supernet)  # trained once here, not in every task
    if not Path(checkpoint).is_file():  # a tabular plugin's marker: its tasks need no weights
        checkpoint = ""
    plan = config.search.plan()
    sizes = f"{plan[0]} per iteration" if len(set(plan)) == 1 else "per iteration " + ", ".join(map(str, plan))
    targets = ", ".join(t.name for t in config.latency_targets) or "none"
    print(f"linas: {config.name}: up to {len(plan)} iterations measuring {sum(plan)} sub-networks ({sizes}; "
          f"latency targets: {targets}) through kfp.local into {args.out}; a line per iteration follows", flush=True)
    warn_if_busy()
    out = run_local(config, str(args.out), checkpoint=checkpoint, warm=not args.cold_start)
    run = RunStore(str(out))
    summary = run.load_summary()
    from linas_lib.cache import cache_uri

    # the line `linas search` prints
    print(f"evaluation cache {cache_uri(config, str(out))}: {summary['cache']['hits']} hits, "
          f"{summary['cache']['misses']} misses")
    print_result(summary, out)
    print(stage_times(get_json(run.store, TASK_TIMES)))
    return 0


def run_arguments(args: argparse.Namespace) -> dict:
    """Pipeline run parameters given on the command line (KEY=VALUE, JSON values)."""
    import json

    from linas_lib.config import ConfigError, check_location

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


@_needs(*KFP, "kubernetes")
def cmd_pipeline_submit(args: argparse.Namespace) -> int:
    from pipelines.submit import submit_run

    config = _preflighted(_load(args.config), args)
    result = submit_run(config, args.host, experiment=args.experiment, arguments=run_arguments(args),
                        namespace=args.namespace)
    print(f"submitted {result.kind} {result.id} in experiment {result.experiment_id}")
    return 0


@_needs(*KFP, "kubernetes")
def cmd_pipeline_schedule(args: argparse.Namespace) -> int:
    from pipelines.submit import schedule_run

    config = _preflighted(_load(args.config), args)
    result = schedule_run(config, args.host, cron=args.cron, max_concurrency=args.max_concurrency,
                          experiment=args.experiment, arguments=run_arguments(args), namespace=args.namespace)
    print(f"scheduled {result.kind} {result.id} ({args.cron}) in experiment {result.experiment_id}")
    return 0


def add_pipeline_commands(sub) -> argparse.ArgumentParser:
    """Register `linas pipeline ...` on the `linas` parser's subparsers (entry point linas.commands)."""
    pipeline = sub.add_parser("pipeline", help="compile, run or submit the Kubeflow pipeline")
    actions = pipeline.add_subparsers(dest="action", required=True)
    compile_ = actions.add_parser("compile", help="compile the pipeline to a KFP package (YAML)")
    compile_.add_argument("config", type=Path, help=CONFIG_HELP)
    compile_.add_argument("-o", "--out", "--output", dest="output", type=Path, required=True,
                          metavar="FILE.yaml", help="the package to write (its folder is created)")
    compile_.set_defaults(func=cmd_pipeline_compile)

    run = actions.add_parser("run", help="run the pipeline locally with kfp.local")
    run.add_argument("config", type=Path, help=CONFIG_HELP)
    run.add_argument("--local", action="store_true",
                     help="execute with kfp.local's SubprocessRunner (the default and only choice: "
                          "a cluster run is `linas pipeline submit`)")
    run.add_argument("-o", "--out", type=Path, required=True, help="run directory")
    run.add_argument("--cold-start", action="store_true",
                     help="start every task in a fresh interpreter, as kfp.local does, instead of forking it "
                          "from one that has imported the stages' modules (2-5 CPU-seconds more per task)")
    run.set_defaults(func=cmd_pipeline_run)

    def remote(p: argparse.ArgumentParser) -> None:
        p.add_argument("config", type=Path, help=CONFIG_HELP)
        p.add_argument("--host", required=True, help="KFP API endpoint, e.g. http://ml-pipeline-ui.kubeflow")
        p.add_argument("--experiment", help="experiment name (created when missing; default: the config's name)")
        p.add_argument("--namespace", help="namespace where the run executes: the Kubeflow profile namespace in "
                                           "multi-user installs (default: cluster.namespace, else KFP's)")
        p.add_argument("--store", help="store_uri run parameter, e.g. s3://linas/runs/nightly")
        p.add_argument("--param", action="append", metavar="KEY=VALUE",
                       help="a run parameter: seed, max_iterations, population, inner_evaluations, "
                            "early_stop_threshold, early_stop_window (gathered into `overrides`), or checkpoint")
        p.add_argument("--kubeconfig", help="kubeconfig for the preflight (default: in-cluster or ~/.kube/config)")
        p.add_argument("--skip-preflight", action="store_true", help="do not check the node pools first")

    submit = actions.add_parser("submit", help="compile and create a run on a Kubeflow Pipelines endpoint")
    remote(submit)
    submit.set_defaults(func=cmd_pipeline_submit)

    schedule = actions.add_parser("schedule", help="create a recurring run (re-search on a cron schedule)")
    remote(schedule)
    schedule.add_argument("--cron", required=True, help="6 fields, seconds first: '0 0 3 * * 1' = Mondays 03:00")
    schedule.add_argument("--max-concurrency", type=int, default=1, help="recurring runs at once (default 1)")
    schedule.set_defaults(func=cmd_pipeline_schedule)
    pipeline.set_defaults(user_errors=USER_ERRORS)
    return pipeline


# ---- linas cluster ----------------------------------------------------------------------
@_needs("kubernetes")
def cmd_cluster_check(args: argparse.Namespace) -> int:
    from pipelines.cluster import check_placements, list_nodes

    config = _load(args.config)
    checks = check_placements(config, list_nodes(args.kubeconfig))
    for check in checks:
        status = "ok" if check.ok else "UNSCHEDULABLE"
        print(f"{check.name}: {status}; nodes: {', '.join(check.nodes) or '-'}; hardware: {check.fingerprint or '-'}")
        if not check.ok:
            for node, reason in sorted(check.reasons.items()):
                print(f"    {node}: {reason}")
    return 0 if all(c.ok for c in checks) else 1


def add_cluster_commands(sub) -> argparse.ArgumentParser:
    """Register `linas cluster ...` on the `linas` parser's subparsers (entry point linas.commands)."""
    cluster = sub.add_parser("cluster", help="cluster tools: can the targets be scheduled?")
    actions = cluster.add_subparsers(dest="action", required=True)
    check = actions.add_parser("check", help="can every hardware target be scheduled on the cluster's nodes?")
    check.add_argument("config", type=Path, help=CONFIG_HELP)
    check.add_argument("--kubeconfig", help="kubeconfig to read the nodes with (default: in-cluster or ~/.kube/config)")
    check.set_defaults(func=cmd_cluster_check)
    cluster.set_defaults(user_errors=USER_ERRORS)
    return cluster
