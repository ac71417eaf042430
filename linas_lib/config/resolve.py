"""The resolver: a config that passed the schema, made concrete against the registries.

It runs once where a config enters (CLI, pipeline task): it loads the plugin file a
config names, checks every registry-backed name (super-network, backends,
predictors, algorithms, selection) and lists what exists when one is unknown, builds
the search space from `supernet.params`, and expands the objectives once (latency
per target). Every problem is reported at once, each naming its field.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from linas_lib.api.objective import MAX_OBJECTIVES, ColumnKey, Objective, column, latency_column
from linas_lib.config.schema import (COMPLEXITY_OBJECTIVES, ConfigError, LinasConfig, check_location, config_error,
                                     format_errors)
from linas_lib.messages import short_repr



def _unknown(kind: str, name: str, names: list[str]) -> str | None:
    return None if name in names else f"unknown {kind} {name!r}; available: {', '.join(names)}"


def _load_plugin_file(data: dict[str, Any], config_dir: str | Path | None) -> dict[str, Any]:
    """Run `supernet.plugin_file` (before names are checked: the file is what registers
    them); a relative path is the config's folder's, kept absolute for pipeline tasks."""
    from linas_lib.registry import load_plugin_file

    supernet = data.get("supernet")
    path = supernet.get("plugin_file") if isinstance(supernet, dict) else None
    if not isinstance(path, str) or not path:
        return data  # absent, or a wrong type the schema names
    try:  # before the file is opened, whose error would repeat the path
        check_location(path)
    except ValueError as exc:
        raise config_error([f"  supernet.plugin_file: {exc}"]) from None
    resolved = Path(path).expanduser()
    if config_dir is not None and not resolved.is_absolute():
        resolved = Path(config_dir, resolved).resolve()
        data = {**data, "supernet": {**supernet, "plugin_file": str(resolved)}}
    try:
        load_plugin_file(str(resolved))
    except FileNotFoundError as exc:
        where = f" (a relative path is resolved against the config's folder {config_dir})" if config_dir else ""
        raise config_error([f"  {exc}{where}"]) from None  # the message names the field
    except Exception as exc:  # a broken plugin: a clear message, not a traceback
        raise config_error([f"  supernet.plugin_file: {str(resolved)!r} failed to load: "
                            f"{type(exc).__name__}: {exc}"]) from None
    return data


def _check_params(what: str, plugin: Any, params: dict[str, Any], where: str) -> str | None:
    """Names (and, where annotated, types) of `params` against the plugin's constructor."""
    import inspect
    import typing

    from pydantic import TypeAdapter

    try:
        signature = inspect.signature(plugin)
    except (TypeError, ValueError):
        return None
    accepted = {n: p for n, p in signature.parameters.items() if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    if not any(p.kind == p.VAR_KEYWORD for p in signature.parameters.values()):
        unknown = sorted(set(params) - set(accepted))
        if unknown:
            return (f"unknown parameter(s) {', '.join(map(repr, unknown))} in {where} of {what}; "
                    f"allowed: {', '.join(accepted) or '(none)'}")
    try:
        hints = typing.get_type_hints(plugin.__init__)
    except Exception:  # unresolvable annotations: names only
        return None
    for name, value in params.items():
        if name not in hints or name not in accepted:
            continue
        try:
            TypeAdapter(hints[name]).validate_python(value)
        except ValidationError as exc:
            reason = exc.errors()[0]["msg"] if exc.errors() else "wrong type"
            return f"{where}.{name}: {reason} (got {short_repr(value)})"
        except Exception:  # a hint pydantic cannot check
            continue
    return None


def _supernet_problems(config: LinasConfig) -> list[tuple[str, str]]:
    from linas_lib.supernets import supernet_class

    supernet = config.supernet
    plugin = supernet_class(supernet.name)
    problem = _check_params(f"super-network {supernet.name}", plugin, supernet.params, "supernet.params")
    if problem:
        return [("supernet", problem)]
    build = getattr(plugin, "search_space", None)
    if build is None:
        return []
    try:
        space = build(**supernet.params)
    except Exception as exc:  # e.g. SearchSpace's "needs at least one variable"
        return [("supernet", f"super-network {supernet.name}: no search space from supernet.params "
                             f"{short_repr(supernet.params)}: {exc}")]
    variables = list(getattr(space, "variables", None) or [])
    if not variables:
        return [("supernet", f"super-network {supernet.name}: supernet.params {short_repr(supernet.params)} give "
                             "an empty search space")]
    empty = [getattr(v, "name", "?") for v in variables if not getattr(v, "options", None)]
    if empty:
        return [("supernet", f"super-network {supernet.name}: variable(s) {empty} of the search space have no options")]
    return []


def _target_problems(config: LinasConfig) -> list[tuple[str, str]]:
    from linas_lib.backends import backend_class, backend_names
    from linas_lib.registry import PluginLoadError

    problems, names = [], backend_names()
    for i, target in enumerate(config.targets):
        if target.backend not in names:  # named by the name check
            continue
        try:
            backend = backend_class(target.backend)
        except PluginLoadError as exc:  # installed, but it does not import
            problems.append((f"targets.{i}", str(exc)))
            continue
        for field_name, allowed in (("device", backend.devices), ("precision", backend.precisions)):
            if getattr(target, field_name) not in allowed:
                problems.append((f"targets.{i}", f"target {target.name!r}: backend {target.backend} supports "
                                                 f"{field_name} {', '.join(allowed)}; got {getattr(target, field_name)!r}"))
    return problems


def expand_objectives(config: LinasConfig, quality: str) -> list[Objective]:
    """Latency becomes one objective per hardware target; `quality` (the super-network's
    metric, on its own or at an INT8 target) is maximized, the rest minimized."""
    out: list[Objective] = []
    for name in config.objectives:
        if name == "latency" and config.search.normalize_latency:
            out += [Objective(column("latency", t.name, "norm"), "min", "x largest") for t in config.targets]
        elif name == "latency":
            out += [Objective(latency_column(t.name), "min", "ms") for t in config.targets]
        elif ColumnKey.parse(name).kind == quality:
            out.append(Objective(name, "max"))
        else:
            out.append(Objective(name, "min"))
    return out


def _objective_problems(config: LinasConfig, quality: str) -> tuple[list[tuple[str, str]], list[Objective]]:
    allowed = [quality, "latency", *COMPLEXITY_OBJECTIVES]
    allowed += [column(quality, t.name) for t in config.targets if t.records_quality]
    unknown = [name for name in config.objectives if name not in allowed]
    if unknown:
        return [("objectives", f"unknown objective {unknown[0]!r}; allowed: {', '.join(allowed)}")], []
    objectives = expand_objectives(config, quality)
    if len(objectives) > MAX_OBJECTIVES:
        return [("objectives", f"{len(objectives)} objectives after expanding latency per target; "
                               f"at most {MAX_OBJECTIVES}")], []
    names = [o.name for o in objectives]
    problems = [("search.constraints", f"unknown objective {g.objective!r}; allowed: {', '.join(names)}")
                for g in config.search.constraints if g.objective not in names]
    return problems, objectives


def resolve(config: LinasConfig) -> LinasConfig:
    """Check `config` against the registries and expand its objectives; ConfigError
    lists every problem. The plugin file, if any, must be loaded already."""
    from linas_lib.registry import PluginLoadError
    from linas_lib.supernets import supernet_class, supernet_names

    problems: list[tuple[str, str]] = []
    objectives: list[Objective] = []
    try:
        problems += _unknown_names(config.model_dump())
        if config.supernet.name in supernet_names():
            problems += _supernet_problems(config)
            more, objectives = _objective_problems(config, supernet_class(config.supernet.name).quality_metric)
            problems += more
        problems += _target_problems(config)
    except PluginLoadError as exc:  # an installed plugin that does not import: a config error, not a traceback
        problems.append(("config", str(exc)))
    if problems:
        raise config_error([f"  {msg}" if msg.startswith(f"{where}.") else f"  {where}: {msg}"
                            for where, msg in problems])
    config._objectives = objectives
    return config


def _names_in_data(data: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(field, kind, name) of the registry-backed names in a config's data, wherever they
    are strings: the same walk serves a valid config (dumped) and one the schema refused,
    so every problem shows at once."""
    def get(node: Any, *path: Any) -> Any:
        for part in path:
            if isinstance(part, int):
                node = node[part] if isinstance(node, list) and part < len(node) else None
            else:
                node = node.get(part) if isinstance(node, dict) else None
        return node

    found = [("supernet.name", "super-network", get(data, "supernet", "name")),
             ("search.algorithm", "algorithm", get(data, "search", "algorithm")),
             ("search.selection", "selection strategy", get(data, "search", "selection")),
             ("search.inner.algorithm", "algorithm", get(data, "search", "inner", "algorithm"))]
    targets = get(data, "targets")
    found += [(f"targets.{i}.backend", "latency backend", get(targets, i, "backend"))
              for i in range(len(targets) if isinstance(targets, list) else 0)]
    groups = [("search.predictors", get(data, "search", "predictors"))]
    schedule = get(data, "search", "schedule")
    for j in range(len(schedule) if isinstance(schedule, list) else 0):
        found.append((f"search.schedule.{j}.inner.algorithm", "algorithm", get(schedule, j, "inner", "algorithm")))
        groups.append((f"search.schedule.{j}.predictors", get(schedule, j, "predictors")))
    found += [(f"{where}.{key}.name", "predictor", get(group, key, "name"))
              for where, group in groups for key in (group if isinstance(group, dict) else {})]
    return [(where, kind, name) for where, kind, name in found if isinstance(name, str)]


def _unknown_names(data: dict[str, Any]) -> list[tuple[str, str]]:
    """(field, message) of every registry-backed name in `data` that nothing registered."""
    from linas_lib.algos import algorithm_names
    from linas_lib.backends import backend_names
    from linas_lib.predictors import predictor_names
    from linas_lib.search.selection import selection_names
    from linas_lib.supernets import supernet_names

    names = {"super-network": supernet_names(), "algorithm": algorithm_names(), "latency backend": backend_names(),
             "predictor": predictor_names(), "selection strategy": selection_names()}
    found = [(where, _unknown(kind, name, names[kind])) for where, kind, name in _names_in_data(data)]
    return [(where, message) for where, message in found if message]


def _raw_name_problems(data: dict[str, Any]) -> list[str]:
    from linas_lib.registry import PluginLoadError

    try:
        return [f"  {where}: {message}" for where, message in _unknown_names(data)]
    except PluginLoadError:
        return []  # the resolver reports it once the structure is right


def config_from_dict(data: Any, config_dir: str | Path | None = None) -> LinasConfig:
    """Schema, then resolver. `config_dir`: the folder of the file `data` came from,
    which relative paths (supernet.plugin_file) are resolved against."""
    if not isinstance(data, dict):
        raise ConfigError(f"invalid config: expected a mapping at the top level, got {type(data).__name__}")
    data = _load_plugin_file(data, config_dir)
    try:
        config = LinasConfig.model_validate(data)
    except ValidationError as exc:
        lines = format_errors(exc)
        named = {line.split(":", 1)[0].strip() for line in lines}
        raise config_error(lines + [line for line in _raw_name_problems(data)
                                    if line.split(":", 1)[0].strip() not in named]) from None
    return resolve(config)


def config_from_json(text: str) -> LinasConfig:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"invalid config: not valid JSON ({exc})") from None
    return config_from_dict(data)


class _UniqueKeyLoader(yaml.SafeLoader):
    """yaml.SafeLoader that refuses a key given twice (YAML silently keeps the last one)."""

    def construct_mapping(self, node, deep=False):  # noqa: D102
        if isinstance(node, yaml.MappingNode):
            seen: set = set()
            for key_node, _ in node.value:  # the explicit keys; '<<' merges may be overridden
                if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                key = self.construct_object(key_node, deep=deep)
                if key in seen:
                    raise yaml.constructor.ConstructorError(
                        "while constructing a mapping", node.start_mark, f"found duplicate key {key!r}", key_node.start_mark
                    )
                seen.add(key)
        return super().construct_mapping(node, deep=deep)


def load_config(path: str | Path) -> LinasConfig:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {str(path)!r} does not exist" + (" (it is a directory)" if path.is_dir() else ""))
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"config file {str(path)!r} is not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except OSError as exc:
        raise ConfigError(f"config file {str(path)!r} cannot be read: {exc.strerror}") from None
    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader)  # a SafeLoader: plain data only, no Python objects
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {str(path)!r} is not valid YAML: {exc}") from None
    if data is None:
        raise ConfigError(f"config file {str(path)!r} is empty")
    return config_from_dict(data, config_dir=path.resolve().parent)
