"""`linas` command line: search in-process, or compile/run the Kubeflow pipeline."""
from __future__ import annotations

import argparse
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


def cmd_search(args: argparse.Namespace) -> int:
    from linas_lib.objectives import supernet_measure
    from linas_lib.report import write_reports
    from linas_lib.runs import RunStore
    from linas_lib.search.loop import run_linas, run_validation
    from linas_lib.supernets import load_supernet

    config = load_config(args.config)
    supernet = load_supernet(config.supernet)
    run = RunStore(str(args.out))
    driver = run_validation if config.search.mode == "validation" else run_linas
    summary = driver(config, supernet.space, supernet_measure(config, supernet), run=run)
    write_reports(run, summary, run.load_measurements())
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

    if not args.local:
        print("linas pipeline run: only --local is available here; use `linas pipeline submit` for a cluster",
              file=sys.stderr)
        return 2
    config = load_config(args.config)
    checkpoint = prepare_checkpoint(config.supernet)
    out = run_local(config, str(args.out), checkpoint=checkpoint)
    _print_result(RunStore(str(out)).load_summary(), out)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="linas", description="Lightweight Iterative NAS on Kubeflow Pipelines")
    sub = parser.add_subparsers(dest="command", required=True)

    search = sub.add_parser("search", help="run a search in this process")
    search.add_argument("config", type=Path)
    search.add_argument("--out", type=Path, required=True, help="run directory")
    search.set_defaults(func=cmd_search)

    pipeline = sub.add_parser("pipeline", help="compile or run the KFP pipeline").add_subparsers(dest="action", required=True)
    compile_ = pipeline.add_parser("compile", help="compile the pipeline to a KFP package (YAML)")
    compile_.add_argument("config", type=Path)
    compile_.add_argument("-o", "--output", type=Path, required=True)
    compile_.set_defaults(func=cmd_pipeline_compile)

    run = pipeline.add_parser("run", help="run the pipeline locally with kfp.local")
    run.add_argument("config", type=Path)
    run.add_argument("--local", action="store_true", help="execute with kfp.local's SubprocessRunner")
    run.add_argument("--out", type=Path, required=True, help="run directory")
    run.set_defaults(func=cmd_pipeline_run)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except ConfigError as exc:
        print(f"linas: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
