"""The compiled KFP v2 IR: unrolled LINAS iterations, data flow, caching and images.

The assertions are about *what runs after what and on which data*, not about how
KFP happens to group tasks: tasks are found by display name ("iter N: ...") in
every DAG of the package (root, exit handlers, conditions, loops), and an input is
traced through group boundaries back to the task that produced it.
"""
from __future__ import annotations

import re
from functools import cached_property

import pytest
import yaml

from components.images import ROLES, image
from linas_lib.cli import main
from linas_lib.config import config_from_json, load_config
from pipelines.linas_pipeline import compile_pipeline

from conftest import ANIMAL_YAML, SMOKE_YAML

ITER = re.compile(r"^iter (\d+): (.+)$")
ROLE_OF = {"evaluate accuracy": "evaluate", "record and train predictors": "train",
           "search predictors (MOEA)": "moea"}


def load_ir(path) -> dict:
    """The pipeline spec document of a compiled package (a platform spec may follow it)."""
    docs = [d for d in yaml.safe_load_all(path.read_text()) if d]
    specs = [d for d in docs if "pipelineInfo" in d and "root" in d]
    assert len(specs) == 1, [list(d) for d in docs]
    return specs[0]


class IR:
    """Tasks of every DAG of a pipeline spec, with data-flow tracing across groups."""

    def __init__(self, spec: dict):
        self.spec = spec
        self.tasks: dict[str, dict] = {}
        self.parent: dict[str, str | None] = {}
        self._walk(spec["root"]["dag"], None)

    def _walk(self, dag: dict, parent: str | None) -> None:
        for name, task in dag.get("tasks", {}).items():
            assert name not in self.tasks, f"task name {name!r} is not unique"
            self.tasks[name], self.parent[name] = task, parent
            sub = self.spec["components"][task["componentRef"]["name"]].get("dag")
            if sub:
                self._walk(sub, name)

    def is_group(self, name: str) -> bool:
        return "dag" in self.spec["components"][self.tasks[name]["componentRef"]["name"]]

    def members(self, group: str) -> set[str]:
        out = {n for n, p in self.parent.items() if p == group}
        return out | {m for n in list(out) for m in self.members(n)}

    def producer(self, name: str, kind: str, key: str) -> str | None:
        """The task whose output feeds input `key` ('artifacts' or 'parameters') of task `name`."""
        spec = self.tasks[name].get("inputs", {}).get(kind, {}).get(key)
        if spec is None:
            return None
        for field in ("taskOutputArtifact", "taskOutputParameter"):
            if field in spec:
                return spec[field]["producerTask"]
        for field, parent_kind in (("componentInputArtifact", "artifacts"), ("componentInputParameter", "parameters")):
            if field in spec:
                parent = self.parent[name]
                return None if parent is None else self.producer(parent, parent_kind, spec[field])
        return None  # a constant or a pipeline parameter

    def _direct(self, name: str) -> set[str]:
        task = self.tasks[name]
        found = set(task.get("dependentTasks", []))
        for kind in ("artifacts", "parameters"):
            for key in task.get("inputs", {}).get(kind, {}):
                found.add(self.producer(name, kind, key))
        found.discard(None)
        if self.parent[name]:
            found.add(self.parent[name])  # a task in a group waits for whatever the group waits for
        return found | {m for f in found if self.is_group(f) and f != self.parent[name] for m in self.members(f)}

    def upstream(self, name: str) -> set[str]:
        """Every task that must finish (or start, for enclosing groups) before `name` runs."""
        seen, todo = set(), [name]
        while todo:
            for dep in self._direct(todo.pop()):
                if dep not in seen:
                    seen.add(dep)
                    todo.append(dep)
        return seen

    @cached_property
    def by_role(self) -> dict[tuple, str]:
        """(iteration, role) -> task name for the LINAS stages, from their display names."""
        out = {}
        for name, task in self.tasks.items():
            display = task.get("taskInfo", {}).get("name", "")
            match = ITER.match(display)
            if match:
                what = match.group(2)
                role = "latency:" + what.removeprefix("latency on ") if what.startswith("latency on ") else ROLE_OF.get(what)
                key = (int(match.group(1)), role or what)
            elif display == "sample initial population":
                key = (0, "sample")
            elif display == "report":
                key = (None, "report")
            else:
                continue
            assert key not in out, f"two tasks for {key}"
            out[key] = name
        return out


@pytest.fixture(scope="module")
def animal_config():
    return load_config(ANIMAL_YAML)


@pytest.fixture(scope="module")
def compiled(animal_config, tmp_path_factory):
    path = tmp_path_factory.mktemp("compiled") / "linas.yaml"
    assert compile_pipeline(animal_config, str(path)) == str(path)
    return path, load_ir(path)


@pytest.fixture(scope="module")
def ir(compiled) -> IR:
    return IR(compiled[1])


@pytest.fixture(scope="module")
def role(ir):
    return ir.by_role


ITERATIONS = 5  # animal_mnist.yaml: 125 evaluations in populations of 25


def test_linas_stages_are_unrolled_per_iteration(role, animal_config):
    assert animal_config.search.iterations == ITERATIONS
    expected = {(0, "sample"), (None, "report")}
    expected |= {(i, r) for i in range(ITERATIONS) for r in ("evaluate", "latency:cpu-ort", "train")}
    expected |= {(i, "moea") for i in range(1, ITERATIONS)}
    assert set(role) == expected
    # kfp derives task names from component names
    assert role[(0, "sample")].startswith("sample") and role[(None, "report")].startswith("report")
    for i in range(ITERATIONS):
        assert role[(i, "evaluate")].startswith("evaluate-accuracy")
        assert role[(i, "latency:cpu-ort")].startswith("measure-latency")
        assert role[(i, "train")].startswith("train-predictors")
    for i in range(1, ITERATIONS):
        assert role[(i, "moea")].startswith("run-moea")


def test_first_iteration_measures_the_sampled_population(ir, role):
    for r in ("evaluate", "latency:cpu-ort"):
        assert ir.producer(role[(0, r)], "artifacts", "population") == role[(0, "sample")]


@pytest.mark.parametrize("it", range(1, ITERATIONS))
def test_later_iterations_measure_the_moea_population(ir, role, it):
    for r in ("evaluate", "latency:cpu-ort"):
        assert ir.producer(role[(it, r)], "artifacts", "population") == role[(it, "moea")]
        assert role[(it, "moea")] in ir.upstream(role[(it, r)])


@pytest.mark.parametrize("it", range(1, ITERATIONS))
def test_moea_searches_the_previous_iterations_predictors(ir, role, it):
    moea = role[(it, "moea")]
    for key in ("measurements", "predictors"):
        assert ir.producer(moea, "artifacts", key) == role[(it - 1, "train")]
    assert ir.tasks[moea]["inputs"]["parameters"]["iteration"]["runtimeValue"]["constant"] == it


@pytest.mark.parametrize("it", range(ITERATIONS))
def test_train_predictors_joins_this_iteration_and_the_history(ir, role, it):
    train = role[(it, "train")]
    upstream = ir.upstream(train)
    assert {role[(it, "evaluate")], role[(it, "latency:cpu-ort")]} <= upstream
    assert ir.producer(train, "artifacts", "accuracy") == role[(it, "evaluate")]
    assert ir.producer(train, "artifacts", "latency_0") == role[(it, "latency:cpu-ort")]
    if it == 0:
        assert ir.producer(train, "artifacts", "history") is None
        assert not {role[(j, "train")] for j in range(1, ITERATIONS)} & upstream
    else:
        assert ir.producer(train, "artifacts", "history") == role[(it - 1, "train")]
        assert role[(it - 1, "train")] in upstream


def test_iterations_run_in_order(ir, role):
    """Nothing of iteration i+1 can start before iteration i's predictors are trained."""
    for it in range(1, ITERATIONS):
        for r in ("moea", "evaluate", "latency:cpu-ort", "train"):
            assert role[(it - 1, "train")] in ir.upstream(role[(it, r)]), (it, r)
            assert role[(it, r)] not in ir.upstream(role[(it - 1, "train")])


def test_report_comes_after_the_last_iteration(ir, role):
    assert role[(ITERATIONS - 1, "train")] in ir.upstream(role[(None, "report")])


def test_caching_is_off_for_measurements_and_on_for_pure_steps(ir, role):
    def cached(key):
        return ir.tasks[role[key]].get("cachingOptions", {}).get("enableCache", False)

    for it in range(ITERATIONS):
        assert not cached((it, "evaluate")), f"iter {it}: accuracy must be measured afresh"
        assert not cached((it, "latency:cpu-ort")), f"iter {it}: latency must be measured afresh"
        assert cached((it, "train"))
    for it in range(1, ITERATIONS):
        assert cached((it, "moea"))
    # a recurring run's first population depends on the store, not only on the inputs
    assert not cached((0, "sample"))


def test_every_executor_runs_a_project_image(compiled, ir, role):
    spec = compiled[1]
    executors = spec["deploymentSpec"]["executors"]
    project_images = {image(r) for r in ROLES}
    for name, executor in executors.items():
        assert executor["container"]["image"] in project_images, name

    def image_of(task_name):
        label = spec["components"][ir.tasks[task_name]["componentRef"]["name"]]["executorLabel"]
        return executors[label]["container"]["image"]

    # only accuracy may ask for an accelerator image; everything else runs the base image
    for (it, r), name in role.items():
        if r != "evaluate":
            assert image_of(name) == image("base"), (it, r)


def test_pipeline_parameters_carry_the_config(compiled, animal_config):
    params = compiled[1]["root"]["inputDefinitions"]["parameters"]
    assert {"config_json", "checkpoint", "store_uri"} <= set(params)
    assert config_from_json(params["config_json"]["defaultValue"]) == animal_config
    assert compiled[1]["pipelineInfo"]["name"] == "linas-animal-mnist-linas"


def test_compiled_package_is_small(compiled):
    path, _ = compiled
    assert path.stat().st_size < 512 * 1024


def test_smoke_config_compiles_to_two_iterations(tmp_path):
    path = tmp_path / "smoke.yaml"
    compile_pipeline(load_config(SMOKE_YAML), str(path))
    assert set(IR(load_ir(path)).by_role) == {
        (0, "sample"), (None, "report"), (1, "moea"),
        (0, "evaluate"), (0, "latency:cpu-ort"), (0, "train"),
        (1, "evaluate"), (1, "latency:cpu-ort"), (1, "train"),
    }


def test_four_targets_compile_to_a_latency_task_each_per_iteration(tmp_path):
    """The most a config holds (a quality and four latencies): each target measures each
    population, and the training waits for every one of them."""
    from linas_lib.config import config_from_dict

    names = [f"cpu-{k}" for k in "abcd"]
    config = config_from_dict({"name": "four", "supernet": {"name": "elastic_cnn"}, "objectives": ["accuracy", "latency"],
                               "targets": [{"name": n, "batch_size": 8 * (k + 1)} for k, n in enumerate(names)],
                               "search": {"population": 10, "evaluations": 20}})
    path = tmp_path / "four.yaml"
    compile_pipeline(config, str(path))
    ir = IR(load_ir(path))
    role = ir.by_role
    for it in range(2):
        for name in names:
            assert role[(it, f"latency:{name}")] in ir.upstream(role[(it, "train")])


def test_image_override_from_the_environment(monkeypatch):
    monkeypatch.setenv("LINAS_IMAGE_REGISTRY", "registry.example:5000/team")
    monkeypatch.setenv("LINAS_IMAGE_TAG", "dev")
    assert image("base") == "registry.example:5000/team/linas-base:dev"
    monkeypatch.setenv("LINAS_IMAGE_BASE", "my/image@sha256:abc")
    assert image("base") == "my/image@sha256:abc"
    with pytest.raises(ValueError, match="base"):
        image("tpu")


def test_cli_pipeline_compile_writes_the_package(tmp_path, capsys):
    out = tmp_path / "linas.yaml"
    assert main(["pipeline", "compile", str(ANIMAL_YAML), "-o", str(out)]) == 0
    assert out.is_file()
    spec = load_ir(out)
    assert spec["pipelineInfo"]["name"] == "linas-animal-mnist-linas"
    assert len(IR(spec).by_role) == 2 + 3 * ITERATIONS + ITERATIONS - 1
    assert str(out) in capsys.readouterr().out
