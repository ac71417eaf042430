"""One component definition per stage kind in a compiled KFP package.

The KFP compiler writes a component spec, an executor (container) and a platform
config for every task, even when they are identical: unrolled over 20 iterations and
3 targets that is ~180 copies of the same few definitions and most of the package.
The IR lets many tasks refer to one component (`componentRef`), and the KFP backend's
Argo compiler keys component specs, implementations and Kubernetes configs by that
name, so identical definitions are merged here: executors first (container spec plus
platform config), then the components that use them, then the DAG components whose
bodies became identical.

Nested `dsl.If` groups also hand every enclosing condition's flag down to every group
inside, unused: over n unrolled iterations that is O(n^2) inputs. Inputs of a DAG
component that nothing in its body reads are dropped, with the caller's argument.

What a task does and where it runs is unchanged: the per-task
inputs, dependencies, retries and caching live in the task specs, which stay as they are.
"""
from __future__ import annotations

import json
import re
from typing import Any

_INDEX = re.compile(r"^(.*?)(?:-(\d+))?$")


def _key(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"))


def _natural(name: str) -> tuple[str, int]:
    base, index = _INDEX.match(name).groups()
    return base, int(index or 0)


def _merge(items: dict[str, Any], key_of) -> dict[str, str]:
    """old name -> kept name, keeping the first name (in natural order) of each group."""
    kept: dict[str, str] = {}
    rename = {}
    for name in sorted(items, key=_natural):
        rename[name] = kept.setdefault(key_of(name), name)
    return rename


def _tasks(spec: dict):
    yield from spec["root"].get("dag", {}).get("tasks", {}).values()
    for component in spec["components"].values():
        yield from component.get("dag", {}).get("tasks", {}).values()


def _reads(task: dict) -> set[str]:
    """Input keys of `task` itself that its trigger condition or iterator reads."""
    keys = set(re.findall(r"inputs\.parameter_values\['([^']+)'\]", task.get("triggerPolicy", {}).get("condition", "")))
    for iterator in ("parameterIterator", "artifactIterator"):
        items = task.get(iterator, {}).get("items", {})
        keys |= {items[k] for k in ("inputParameter", "inputArtifact") if k in items}
    return keys


def prune_unused_inputs(spec: dict) -> None:
    """Drop the inputs of DAG components that their bodies never read, to a fixpoint."""
    components = spec["components"]
    callers: dict[str, list[dict]] = {}
    for task in _tasks(spec):
        callers.setdefault(task["componentRef"]["name"], []).append(task)
    changed = True
    while changed:
        changed = False
        for name, component in components.items():
            if "dag" not in component:
                continue
            used = {(kind, source[field])
                    for task in component["dag"].get("tasks", {}).values()
                    for kind in ("parameters", "artifacts")
                    for source in task.get("inputs", {}).get(kind, {}).values()
                    for field in ("componentInputParameter", "componentInputArtifact") if field in source}
            pinned = {key for task in callers.get(name, []) for key in _reads(task)}
            for kind in ("parameters", "artifacts"):
                defined = component.get("inputDefinitions", {}).get(kind, {})
                for key in [k for k in defined if (kind, k) not in used and k not in pinned]:
                    del defined[key]
                    for task in callers.get(name, []):
                        task.get("inputs", {}).get(kind, {}).pop(key, None)
                    changed = True
                if not defined:
                    component.get("inputDefinitions", {}).pop(kind, None)


def compact(spec: dict, platform: dict | None) -> None:
    """Merge identical executors and components of `spec` (and `platform`) in place."""
    prune_unused_inputs(spec)
    for task in _tasks(spec):
        if task.get("cachingOptions") == {}:  # the proto default (no caching), written out per task
            del task["cachingOptions"]
    executors = spec["deploymentSpec"]["executors"]
    k8s = (platform or {}).get("platforms", {}).get("kubernetes", {}).get("deploymentSpec", {}).get("executors", {})
    by_executor = _merge(executors, lambda n: _key([executors[n], k8s.get(n)]))
    for old, new in by_executor.items():
        if old != new:
            executors.pop(old)
            k8s.pop(old, None)
    for component in spec["components"].values():
        if "executorLabel" in component:
            component["executorLabel"] = by_executor[component["executorLabel"]]
    # Components, repeatedly: merging leaf components can make DAG bodies identical.
    components = spec["components"]
    while True:
        rename = _merge(components, lambda n: _key(components[n]))
        if all(old == new for old, new in rename.items()):
            return
        for old, new in rename.items():
            if old != new:
                components.pop(old)
        for task in _tasks(spec):
            ref = task["componentRef"]
            ref["name"] = rename.get(ref["name"], ref["name"])


def abbreviate_header(header: str, limit: int = 200) -> str:
    """KFP's comment header repeats every input's default, the whole config JSON
    included; the spec holds it once, the comment needs only its start."""
    return "".join(line if len(line) <= limit else line[:limit] + "...']\n" for line in header.splitlines(keepends=True))
