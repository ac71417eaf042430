"""The `linas` command line and the Makefile, as a newcomer meets them: every argument
explained, every command in the README, `make compile` and `make clean` on a fresh clone."""
from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess

import pytest

from linas_lib.cli import build_parser, main

from conftest import ROOT, SMOKE_YAML


def _commands(parser: argparse.ArgumentParser, prefix: tuple[str, ...] = ()):
    """(command words, parser) of every leaf command."""
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subs:
        yield prefix, parser
        return
    for name, child in subs[0].choices.items():
        yield from _commands(child, prefix + (name,))


def test_every_argument_has_help():
    missing = []
    for words, parser in _commands(build_parser()):
        for action in parser._actions:
            if isinstance(action, argparse._HelpAction):
                continue
            if not action.help:
                missing.append(f"linas {' '.join(words)}: {action.dest}")
    assert not missing, missing


def test_every_command_that_writes_takes_o_and_out_alike():
    """`-o` and `--out` name what a command writes, whichever command it is (compile's
    `--output` stays accepted)."""
    writers = {}
    for words, parser in _commands(build_parser()):
        for action in parser._actions:
            if {"-o", "--out", "--output"} & set(action.option_strings):
                writers[" ".join(words)] = set(action.option_strings)
    assert set(writers) == {"search", "export", "lut build", "predictors evaluate", "pipeline compile",
                            "pipeline run"}, writers
    assert all({"-o", "--out"} <= options for options in writers.values()), writers


def _readme_cli_block() -> str:
    text = (ROOT / "README.md").read_text()
    section = text.split("## The CLI", 1)[1]
    return section.split("```", 2)[1]


def test_readme_lists_every_command():
    block = _readme_cli_block()
    listed = {tuple(line.split("#")[0].split()[1:1 + len(words)])
              for line in block.splitlines() if line.startswith("linas ")
              for words, _ in _commands(build_parser())}
    missing = [" ".join(words) for words, _ in _commands(build_parser()) if words not in listed]
    assert not missing, f"README's CLI section lacks: {missing}"


def test_readme_commands_parse_as_written():
    """Each line of the README's CLI block, placeholders filled in, is accepted by the parser."""
    fill = {"CONFIG": "c.yaml", "DIR": "d", "FILE.yaml": "f.yaml", "URL": "http://kfp", "NAME": "n",
            "MEASUREMENTS": "m.parquet", "RUN_DIR": "d", "ID": "abc", "T": "t", "TABLE": "t.json", "F": "k"}
    for line in _readme_cli_block().splitlines():
        if not line.startswith("linas "):
            continue
        command = line.split("  #")[0].strip()
        command = re.sub(r"\[([^\]]*)\]", r"\1", command)  # optional parts given
        words = [fill.get(w, w) for w in re.findall(r'"[^"]*"|\S+', command)[1:]]
        words = [w.strip('"') for w in words]
        words = [w.replace("s3://...", "s3://b/p").replace("KEY=VALUE", "seed=1") for w in words]
        build_parser().parse_args(words)  # SystemExit(2) on a line the parser refuses


def test_pipeline_run_is_local_without_the_flag(tmp_path, capsys):
    """`--local` is the default: without it the command goes on to load the config."""
    assert main(["pipeline", "run", str(tmp_path / "none.yaml"), "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert "does not exist" in err and "--local" not in err


def test_pipeline_compile_creates_the_output_folder(tmp_path, capsys):
    out = tmp_path / "build" / "nested" / "linas.yaml"
    assert main(["pipeline", "compile", str(SMOKE_YAML), "-o", str(out)]) == 0
    assert out.is_file() and "pipelineInfo" in out.read_text()


needs_make = pytest.mark.skipif(shutil.which("make") is None, reason="no make")


def _clone(tmp_path):
    """The Makefile and what its setup stamp depends on, with an installed-looking venv whose
    `linas` writes its -o file the way the real one does (into an existing folder only)."""
    for name in ("Makefile", "pyproject.toml", "constraints.txt"):
        shutil.copy(ROOT / name, tmp_path / name)
    bin_dir = tmp_path / ".venv" / "bin"
    bin_dir.mkdir(parents=True)
    linas = bin_dir / "linas"
    linas.write_text('#!/bin/sh\n[ "$1 $2" = "pipeline compile" ] && echo compiled > "$5"\n')
    linas.chmod(0o755)
    (tmp_path / ".venv" / ".installed").touch()  # newer than pyproject.toml: setup is done
    return tmp_path


@needs_make
def test_make_compile_on_a_fresh_clone(tmp_path):
    clone = _clone(tmp_path)
    result = subprocess.run(["make", "-s", "compile"], cwd=clone, capture_output=True, text=True,
                            env={**os.environ, "MAKEFLAGS": ""})
    assert result.returncode == 0, result.stderr
    assert (clone / "build" / "linas-animal-mnist.yaml").read_text() == "compiled\n"


@needs_make
def test_make_clean_forgets_everything(tmp_path):
    clone = _clone(tmp_path)
    for folder in ("runs/evaluation-cache", "build", ".pytest_cache", ".cache/linas"):
        (clone / folder).mkdir(parents=True)
    (clone / ".cache" / "linas" / "elastic_cnn-1.pt").write_bytes(b"weights")
    (clone / "notes.txt").write_text("mine")
    result = subprocess.run(["make", "-s", "clean"], cwd=clone, capture_output=True, text=True,
                            env={**os.environ, "MAKEFLAGS": ""})
    assert result.returncode == 0, result.stderr
    left = sorted(p.relative_to(clone).as_posix() for p in clone.rglob("*"))
    assert left == [".cache", "Makefile", "constraints.txt", "notes.txt", "pyproject.toml"], left


def test_a_search_that_trains_on_a_busy_host_warns_once(tmp_path, capsys, monkeypatch):
    """Training warns before its minutes, and the search would warn again right after: one
    command, one warning."""
    import yaml

    monkeypatch.setenv("LINAS_CACHE", str(tmp_path / "checkpoints"))  # nothing cached: it trains
    config = tmp_path / "cnn.yaml"
    config.write_text(yaml.safe_dump({
        "name": "busy-cnn", "objectives": ["accuracy", "macs"],
        "supernet": {"name": "elastic_cnn", "params": {"epochs": 1, "batch_size": 64, "train_limit": 128,
                                                       "calibration_images": 64, "ranks": 1}},
        "search": {"mode": "validation", "algorithm": "random", "population": 2, "evaluations": 2}}))
    load = 40.0
    monkeypatch.setattr(os, "getloadavg", lambda: (load, load, load))
    assert main(["search", str(config), "--out", str(tmp_path / "run")]) == 0
    assert capsys.readouterr().err.count("linas: warning: the host is busy") == 1
    assert main(["search", str(config), "--out", str(tmp_path / "again")]) == 0  # the next command: again
    assert capsys.readouterr().err.count("linas: warning: the host is busy") == 1


@pytest.mark.parametrize("per_cpu", [0.2, 1.6, 7.0])
def test_a_search_on_a_busy_host_says_so_before_it_starts(tmp_path, capsys, monkeypatch, per_cpu):
    """Above 1.5 runnable processes per usable CPU a run warns first, with the share of a CPU
    each of its processes will get: a slow run explained, not a mystery."""
    import yaml

    from linas_lib.backends.timing import usable_cpus

    config = tmp_path / "nb.yaml"
    config.write_text(yaml.safe_dump({
        "name": "busy", "supernet": {"name": "nasbench201", "params": {"dataset": "cifar10"}},
        "objectives": ["accuracy", "latency"], "targets": [{"name": "nb201", "backend": "tabular"}],
        "search": {"population": 4, "evaluations": 8, "inner": {"evaluations": 40, "population": 8}}}))
    cpus = usable_cpus()
    load = per_cpu * cpus
    monkeypatch.setattr(os, "getloadavg", lambda: (load, load, load))  # the host's load as the kernel reports it
    assert main(["search", str(config), "--out", str(tmp_path / "run")]) == 0
    err = capsys.readouterr().err
    assert ("linas: warning: the host is busy" in err) == (per_cpu > 1.5), err
    if per_cpu > 1.5:
        share = cpus / (load + 1)
        assert f"(load average {load:.1f} on {cpus} usable CPUs): each process of this run gets about {share:.0%} " \
               f"of a CPU, so it runs about {1 / share:.0f}x slower" in err and "latencies timed now will be noisy" in err
