"""Hostile config files: every bad input is a ConfigError naming the field (dotted path),
with the allowed values for registry names, and the CLI prints it without a traceback."""
from __future__ import annotations

import copy
import itertools
import re
import subprocess
import sys
import types
import typing
import uuid
from pathlib import Path

import annotated_types
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from linas_lib.cli import main
from linas_lib.config import (
    ConfigError,
    LinasConfig,
    _UniqueKeyLoader,
    config_from_dict,
    config_from_json,
    load_config,
)

from pipelines.placement import ClusterConfig, Placement, deployment

ROOT = Path(__file__).resolve().parents[2]
# Sections the core keeps as plain data and the deployment layer checks: a user writes one
# file, so every hostile value is tried through both (as `linas pipeline compile` does).
SECTIONS = {"cluster": ClusterConfig, "placement": Placement}
BASE = {
    "name": "t",
    "supernet": {"name": "elastic_cnn"},
    "targets": [{"name": "cpu-ort", "backend": "onnxruntime"}],
    "search": {"population": 10, "evaluations": 20},
}


def _with(**dotted) -> dict:
    data = copy.deepcopy(BASE)
    for key, value in dotted.items():
        node: typing.Any = data
        *parents, leaf = key.split(".")
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node.setdefault(part, {})
        if isinstance(node, list):
            node[int(leaf)] = value
        else:
            node[leaf] = value
    return data


def _check(data):
    return deployment(config_from_dict(data))


def _error(data) -> str:
    with pytest.raises(ConfigError) as info:
        _check(data)
    return str(info.value)


def test_base_is_valid():
    config_from_dict(BASE)


# ---- unknown keys ---------------------------------------------------------------------
@pytest.mark.parametrize("dotted, allowed", [
    ("bogus", "search"),
    ("search.popsize", "population"),
    ("search.inner.popsize", "evaluations"),
    ("targets.0.batchsize", "batch_size"),
    ("targets.0.placement.resources.gpus", "gpu"),
    ("cluster.accuracy.shard", "shards"),
    ("search.early_stop.windw", "window"),
])
def test_unknown_keys_name_the_path_and_the_allowed_keys(dotted, allowed):
    message = _error(_with(**{dotted: 1}))
    assert f"{dotted}: unknown key; allowed:" in message
    assert allowed in message.split(dotted, 1)[1]


def test_unknown_key_inside_a_dict_of_models():
    message = _error(_with(**{"search.predictors": {"accuracy": {"name": "ridge", "alpha": 1}}}))
    assert "search.predictors.accuracy.alpha: unknown key; allowed: name, params" in message


# ---- wrong types and out-of-range values ----------------------------------------------
@pytest.mark.parametrize("dotted, value", [
    ("search.population", "many"),
    ("search.population", 1),
    ("search.population", 10**9),
    ("search.evaluations", -5),
    ("search.evaluations", 10**13),
    ("search.inner.crossover", 1.5),
    ("search.inner.mutation", float("nan")),
    ("targets.0.min_time_s", float("inf")),
    ("targets.0.min_time_s", -0.1),
    ("targets.0.batch_size", 0),
    ("targets.0.threads", 2.5),
    ("targets.0.device", "tpu"),
    ("targets.0.precision", "int4"),
    ("targets.0.name", "Not A DNS Label"),
    ("targets.0.placement.resources.cpu_limit", "lots"),
    ("cluster.retries", 99),
    ("cluster.retry_backoff", "soon"),
    ("cluster.s3_secure", "perhaps"),
    ("seed", -1),
    ("objectives", []),
    ("targets", []),
    ("name", "white space"),
    ("search.early_stop.threshold", float("-inf")),
    ("search.constraints", [{"objective": "latency@cpu-ort", "max": float("nan")}]),
])
def test_wrong_type_or_range_names_the_field(dotted, value):
    message = _error(_with(**{dotted: value}))
    assert dotted in message, message
    assert "Traceback" not in message


@pytest.mark.parametrize("dotted, value, allowed", [
    ("supernet.name", "resnet9000", "elastic_cnn"),
    ("targets.0.backend", "tensorrt-x", "onnxruntime"),
    ("search.inner.algorithm", "annealing", "nsga2"),
    ("search.algorithm", "annealing", "nsga2"),
    ("search.predictors", {"accuracy": {"name": "oracle"}}, "ridge"),
    ("objectives", ["accuracy", "energy"], "latency"),
])
def test_unknown_registry_names_list_the_allowed_values(dotted, value, allowed):
    message = _error(_with(**{dotted: value}))
    assert dotted.split(".")[0] in message and allowed in message
    assert "available" in message or "allowed" in message


# ---- budgets ----------------------------------------------------------------------------
def test_budget_smaller_than_population():
    message = _error(_with(**{"search.population": 30, "search.evaluations": 20}))
    assert "search:" in message and "evaluations (20) must be at least population (30)" in message


def test_inner_budget_smaller_than_inner_population():
    message = _error(_with(**{"search.inner": {"evaluations": 10, "population": 50}}))
    assert "search.inner:" in message and "evaluations (10) must be at least population (50)" in message


# ---- empty search spaces and supernet parameters ------------------------------------------
PLUGIN = '''
from linas_lib.api.search_space import SearchSpace, Variable
from linas_lib.supernets import supernet_registry


@supernet_registry.register("{name}")
class Plugin:
    quality_metric = "accuracy"

    def __init__(self, widths: list = (8, 16), depth: int = 2):
        self.space = self.search_space(widths=widths, depth=depth)

    @classmethod
    def search_space(cls, widths=(8, 16), depth=2, **_):
        return SearchSpace([Variable(f"layer{{i}}.width", tuple(widths)) for i in range(depth)], name="{name}")
'''
_plugins = itertools.count()


@pytest.fixture
def plugin(tmp_path):
    """A plugin file whose space comes from its params; a fresh registry name per test."""
    name = f"space_plugin_{next(_plugins)}_{uuid.uuid4().hex[:8]}"
    path = tmp_path / "plugin.py"
    path.write_text(PLUGIN.format(name=name))
    return {"name": name, "plugin_file": str(path)}


def test_plugin_space_is_accepted(plugin):
    assert config_from_dict(_with(supernet=plugin)).supernet.name == plugin["name"]


@pytest.mark.parametrize("params, expected", [
    ({"depth": 0}, "at least one variable"),
    ({"widths": []}, "layer0.width"),
])
def test_params_that_give_an_empty_space_are_config_errors(plugin, params, expected):
    message = _error(_with(supernet={**plugin, "params": params}))
    assert "supernet" in message and plugin["name"] in message and expected in message


def test_unknown_and_mistyped_supernet_params():
    message = _error(_with(**{"supernet.params": {"epochs": 1, "epoch": 2}}))
    assert "'epoch'" in message and "supernet.params" in message and "allowed: epochs" in message
    message = _error(_with(**{"supernet.params": {"epochs": "many"}}))
    assert "supernet.params.epochs" in message and "'many'" in message


def test_a_broken_plugin_file_is_a_config_error(tmp_path):
    bad = tmp_path / "broken.py"
    bad.write_text("def oops(:\n")
    message = _error(_with(supernet={"name": "x", "plugin_file": str(bad)}))
    assert "supernet.plugin_file" in message and "SyntaxError" in message
    message = _error(_with(supernet={"name": "x", "plugin_file": str(tmp_path / "absent.py")}))
    assert "supernet.plugin_file" in message and "does not exist" in message


def test_a_plugin_file_runs_only_when_named(tmp_path):
    marker = tmp_path / "ran"
    path = tmp_path / "side_effect.py"
    path.write_text(f"open({str(marker)!r}, 'w').write('x')\n")
    config_from_dict(BASE)
    assert not marker.exists()
    with pytest.raises(ConfigError):  # it registers nothing, but it did run: the user named it
        config_from_dict(_with(supernet={"name": "nothing", "plugin_file": str(path)}))
    assert marker.exists()


# ---- credentials never belong in a config -------------------------------------------------
def test_store_uri_with_credentials_is_refused_without_echoing_them():
    key_id, secret = "AKIA" + "LINASTESTEXAMPLE", "wJalrXUtnFEMI" + "-K7MDENG-bPxRfiCYEXAMPLEKEY"  # fake, in parts
    message = _error(_with(store=f"s3://{key_id}:{secret}@bucket/runs"))
    assert "store:" in message and "user:password@" in message
    assert secret not in message and key_id not in message


@pytest.mark.parametrize("endpoint", ["http://minio:9000", "key:secret@minio:9000", "minio:9000/path", ""])
def test_s3_endpoint_must_be_host_and_port(endpoint):
    assert "cluster.s3_endpoint" in _error(_with(**{"cluster.s3_endpoint": endpoint}))


# ---- files --------------------------------------------------------------------------------
@pytest.mark.parametrize("content, expected", [
    ("", "is empty"),
    ("# only a comment\n", "is empty"),
    ("- a\n- b\n", "expected a mapping"),
    ("name: [unclosed\n", "not valid YAML"),
    ("name: a\nname: b\n", "duplicate key 'name'"),
    ("search:\n  population: 10\n  population: 20\n", "duplicate key 'population'"),
    ("name: !!python/object/apply:os.system ['echo pwned']\n", "not valid YAML"),
    ("search: {population: .nan}\n", "search.population"),
])
def test_hostile_yaml_files(tmp_path, content, expected):
    path = tmp_path / "c.yaml"
    path.write_text(content)
    with pytest.raises(ConfigError, match="c.yaml|invalid config") as info:
        load_config(path)
    assert expected in str(info.value)


def test_yaml_merge_keys_may_override():
    text = "base: &b {population: 10, evaluations: 20}\nsearch:\n  <<: *b\n  evaluations: 30\n"
    data = yaml.load(text, Loader=_UniqueKeyLoader)
    assert data["search"] == {"population": 10, "evaluations": 30}


def test_binary_file_and_directory(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_bytes(b"name: \xff\xfe\x00garbage")
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_config(path)
    with pytest.raises(ConfigError, match="directory"):
        load_config(tmp_path)
    with pytest.raises(ConfigError, match="not valid JSON"):
        config_from_json("{name: t")


# ---- the command line -------------------------------------------------------------------------
@pytest.mark.parametrize("debug", ["", "1"])
def test_cli_prints_the_config_error_without_traceback(tmp_path, capsys, monkeypatch, debug):
    if debug:
        monkeypatch.setenv("LINAS_DEBUG", debug)
    else:
        monkeypatch.delenv("LINAS_DEBUG", raising=False)
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(_with(**{"search.population": "many", "targets.0.backend": "nope"})))
    assert main(["pipeline", "compile", str(path), "-o", str(tmp_path / "p.yaml")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("linas: invalid config:")
    assert "search.population" in err and "targets.0.backend" in err and "onnxruntime" in err
    assert "Traceback" not in err
    assert not (tmp_path / "p.yaml").exists()


def test_cli_in_a_real_process_exits_2_without_traceback(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("search: {population: 30, evaluations: 20}\nbogus: 1\n")
    proc = subprocess.run([sys.executable, "-m", "linas_lib.cli", "pipeline", "compile", str(path), "-o",
                           str(tmp_path / "p.yaml")], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    assert "bogus: unknown key" in proc.stderr


# ---- property: one mutated field -> a ConfigError naming that field ---------------------------
def _leaves(model: type[BaseModel], data: dict, prefix: str = ""):
    """(dotted path, FieldInfo) of every scalar-ish field reachable from `data`'s models."""
    for name, field in model.model_fields.items():
        path = f"{prefix}{name}"
        inner = _unwrap(field.annotation)
        if name in SECTIONS and typing.get_origin(inner) is dict:
            inner = SECTIONS[name]
        if isinstance(inner, type) and issubclass(inner, BaseModel):
            yield from _leaves(inner, data.get(name) or {}, path + ".")
        elif typing.get_origin(inner) is list and isinstance(data.get(name), list) and data[name]:
            item = typing.get_args(inner)[0]
            if isinstance(item, type) and issubclass(item, BaseModel):
                yield from _leaves(item, data[name][0], f"{path}.0.")
            yield path, field
        else:
            yield path, field


def _unwrap(ann):
    """X | None -> X"""
    args = [a for a in typing.get_args(ann) if a is not type(None)]
    return args[0] if typing.get_origin(ann) in (typing.Union, types.UnionType) and len(args) == 1 else ann


def _kind(field) -> str:
    inner = _unwrap(field.annotation)
    origin = typing.get_origin(inner)
    if origin is typing.Literal:
        return "literal"
    if origin in (list, dict):
        return origin.__name__
    if inner in (int, float, str, bool):
        return inner.__name__
    if inner is typing.Any:
        return "any"
    if origin in (typing.Union, types.UnionType) and int in typing.get_args(inner):
        return "int_or_literal"  # e.g. search.population: an integer or 'auto'
    return "other"


WRONG = {
    "int": ["many", 1.5, [1], {"a": 1}, None, float("nan")],
    "int_or_literal": ["many", 1.5, [1], {"a": 1}, float("nan"), 1, 100_001],
    "float": ["many", [1.0], {"a": 1}, float("nan"), float("inf")],
    "str": [7, 2.5, [1], {"a": "b"}],
    "bool": ["perhaps", 7, [True], {"a": 1}],
    "literal": ["no-such-choice", 12, [1]],
    "list": ["x", 5, {"a": 1}],
    "dict": [[1], "x", 5],
}


def _out_of_range(field) -> list:
    values = []
    for meta in field.metadata:
        if isinstance(meta, annotated_types.Ge):
            values.append(meta.ge - (1 if isinstance(meta.ge, int) else 0.5))
        elif isinstance(meta, annotated_types.Gt):
            values.append(meta.gt)
        elif isinstance(meta, annotated_types.Le):
            values.append(meta.le + 1)
        elif isinstance(meta, annotated_types.Lt):
            values.append(meta.lt)
        elif isinstance(meta, annotated_types.MinLen) and meta.min_length:
            values.append([])
    return values


CANDIDATES = []
for _path, _field in _leaves(LinasConfig, BASE):
    _values = WRONG.get(_kind(_field), []) + _out_of_range(_field)
    if _field.default is None or type(None) in typing.get_args(_field.annotation):
        _values = [v for v in _values if v is not None]  # null is allowed there
    CANDIDATES += [(_path, v) for v in _values]


def test_the_mutation_table_covers_the_model():
    paths = {p for p, _ in CANDIDATES}
    assert {"search.population", "targets.0.batch_size", "cluster.retries", "supernet.name", "seed"} <= paths
    assert len(CANDIDATES) > 100


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(CANDIDATES))
def test_any_single_bad_field_is_a_config_error_naming_it(candidate):
    path, value = candidate
    data = _with(**{path: value})
    try:
        _check(data)
    except ConfigError as exc:
        assert path in str(exc), f"{path}={value!r}: {exc}"
    else:
        pytest.fail(f"{path}={value!r} was accepted")


@settings(max_examples=60, deadline=None)
@given(st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
                    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
                    max_leaves=8))
def test_arbitrary_yaml_data_never_escapes_as_another_exception(data):
    try:
        _check(data)
    except ConfigError:
        pass
    try:
        _check({"search": data, "targets": data, "cluster": data})
    except ConfigError:
        pass


def test_mutation_helper_does_not_alter_base():
    before = copy.deepcopy(BASE)
    _with(**{"targets.0.batch_size": 0, "search.inner.crossover": 2})
    assert BASE == before


# ---- every path or URI field refuses embedded credentials, through one validator -------------
def _unwrap_args(tp) -> list:
    return [a for a in typing.get_args(tp) if a is not type(None)]


def _is_location(tp) -> bool:
    from linas_lib.config import LocationField

    if typing.get_origin(tp) is typing.Annotated:
        return any(isinstance(m, LocationField) for m in tp.__metadata__)
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        return any(_is_location(a) for a in _unwrap_args(tp))
    return False


def _is_params(tp, metadata) -> bool:
    from linas_lib.config import _check_params_locations

    return typing.get_origin(tp) is dict and any(getattr(m, "func", None) is _check_params_locations for m in metadata)


def _config_fields(model=LinasConfig, prefix=""):
    """(dotted path, annotation, field name, metadata) of every field; lists step in at 0, dicts at a valid key."""
    for name, info in model.model_fields.items():
        path, tp = f"{prefix}{name}", info.annotation
        yield path, tp, name, info.metadata
        if name in SECTIONS and typing.get_origin(tp) is typing.Annotated or typing.get_origin(tp) is dict:
            if name in SECTIONS:
                yield from _config_fields(SECTIONS[name], f"{path}.")
                continue
        unions = _unwrap_args(tp) if typing.get_origin(tp) in (typing.Union, types.UnionType) else []
        for arg in [tp, *unions]:
            origin, args = typing.get_origin(arg), typing.get_args(arg)
            if isinstance(arg, type) and issubclass(arg, BaseModel):
                yield from _config_fields(arg, f"{path}.")
            elif origin is list and args and isinstance(args[0], type) and issubclass(args[0], BaseModel):
                yield from _config_fields(args[0], f"{path}.0.")
            elif origin is dict and len(args) == 2:
                key = typing.get_args(args[0])[0] if typing.get_origin(args[0]) is typing.Literal else "accuracy"
                if _is_location(args[1]):
                    yield f"{path}.{key}", args[1], name, ()
                elif isinstance(args[1], type) and issubclass(args[1], BaseModel):
                    yield from _config_fields(args[1], f"{path}.{key}.")


LOCATION_NAME = re.compile(r"(^|_)(uri|url|path|file|checkpoint|dir|location|table)s?$|^store$")
FAKE_KEY_ID, FAKE_SECRET = "AKIA" + "LINASTESTEXAMPLE", "wJalrXUtnFEMI" + "-K7MDENG-bPxRfiCYEXAMPLEKEY"
HOSTILE_LOCATIONS = [
    f"s3://{FAKE_KEY_ID}:{FAKE_SECRET}@minio:9000/bucket/key",
    f"https://{FAKE_KEY_ID}:{FAKE_SECRET}@host/weights.pt",
    f"https://bucket.s3.amazonaws.com/w.pt?X-Amz-Credential={FAKE_KEY_ID}&X-Amz-Signature={FAKE_SECRET}",
    f"s3://bucket/runs?endpoint=minio:9000&secret_key={FAKE_SECRET}",
]


def _set_path(data: dict, path: str, value) -> dict:
    parts = path.split(".")
    node = data
    for part, following in zip(parts, parts[1:]):
        if isinstance(node, list):
            while len(node) <= int(part):
                node.append({})
            node = node[int(part)]
        else:
            node = node.setdefault(part, [] if following.isdigit() else {})
    node[parts[-1]] = value
    return data


def test_every_location_field_is_checked_and_nothing_location_like_escapes():
    fields = list(_config_fields())
    locations = {path for path, tp, _, _ in fields if _is_location(tp)}
    assert {"store", "supernet.checkpoint", "supernet.plugin_file", "cache.uri", "cluster.images.base"} <= locations
    # a path- or URI-named string field added later must be a Location too
    unchecked = [path for path, tp, name, _ in fields if LOCATION_NAME.search(name) and path not in locations
                 and str in [tp, *_unwrap_args(tp)]]
    assert not unchecked, f"path/URI fields without the credentials check (type them Location): {unchecked}"
    # and every free-form dict is a Params (its strings are checked the same way)
    loose = [path for path, tp, _, meta in fields
             if typing.get_origin(tp) is dict and typing.get_args(tp)[1] is typing.Any and not _is_params(tp, meta)]
    assert not loose, f"dict[str, Any] fields without the credentials check (type them Params): {loose}"


@pytest.mark.parametrize("hostile", HOSTILE_LOCATIONS, ids=["s3-userinfo", "https-userinfo", "presigned", "query"])
def test_every_location_field_refuses_credentials_without_echoing_them(hostile):
    fields = list(_config_fields())
    targets = [(p, False) for p, tp, _, _ in fields if _is_location(tp)] + \
              [(p, True) for p, tp, _, meta in fields if _is_params(tp, meta)]
    assert len(targets) >= 12, targets
    for path, is_params in targets:
        data = _set_path(copy.deepcopy(BASE), path, {"table": hostile} if is_params else hostile)
        message = _error(data)
        expected = f"{path}.table: must not" if is_params else f"{path}: must not"
        assert expected in message, (path, message)
        assert FAKE_SECRET not in message and FAKE_KEY_ID not in message, (path, message)


@pytest.mark.parametrize("fine", ["/data/weights.pt", "s3://bucket/ck.pt?endpoint=minio:9000&secure=false",
                                  "file:///tmp/x", "https://host/w.pt?version=3&design=a", "runs/a@b/c"])
def test_plain_locations_are_accepted(fine):
    config_from_dict(_with(**{"supernet.checkpoint": fine, "cache.uri": fine, "store": fine}))


def test_the_cli_refuses_a_secret_checkpoint_before_compiling(tmp_path, capsys):
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump(_with(**{"supernet.checkpoint": HOSTILE_LOCATIONS[0]})))
    out = tmp_path / "p.yaml"
    assert main(["pipeline", "compile", str(config), "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert "supernet.checkpoint: must not contain user:password@" in err and FAKE_SECRET not in err
    assert not out.exists()


def test_run_parameters_refuse_credentials_too():
    import argparse

    from pipelines.cli import run_arguments

    args = argparse.Namespace(param=[f"checkpoint={HOSTILE_LOCATIONS[0]}"], store=None)
    with pytest.raises(ConfigError, match="run parameter checkpoint: must not contain") as info:
        run_arguments(args)
    assert FAKE_SECRET not in str(info.value)
