"""One typed key for every value column (one format, one parse), and typed documents for
what crosses module and process boundaries: the summary, pareto.json, measurement rows
and the measuring stages' records."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from linas_lib.api.documents import (LatencyOutput, MeasurementRow, ObjectiveRecord, ParetoDocument, Summary,
                                     check_document)
from linas_lib.api.objective import STATISTICS, ColumnKey, Objective
from linas_lib.config import config_from_dict
from linas_lib.measurements import column_unit, make_row

ROOT = Path(__file__).resolve().parents[1]

kinds = st.sampled_from(["accuracy", "latency", "macs", "params", "bleu", "hr@10", "load_1m", "top_5"])
targets = st.none() | st.from_regex(r"[a-z]([-a-z0-9]{0,8}[a-z0-9])?", fullmatch=True)


@given(kinds, targets, st.none() | st.sampled_from(STATISTICS), st.booleans())
def test_a_key_reads_back_as_itself(kind, target, statistic, predicted):
    key = ColumnKey(kind, target, statistic, predicted)
    assert ColumnKey.parse(str(key)) == key


@pytest.mark.parametrize("name, parts", [
    ("latency@cpu-ort", ("latency", "cpu-ort", None, False)),
    ("latency_cv@cpu-ort", ("latency", "cpu-ort", "cv", False)),
    ("latency_norm@gpu-a100", ("latency", "gpu-a100", "norm", False)),
    ("hr@10", ("hr@10", None, None, False)),  # the metric's own '@': '10' is no target
    ("hr@10@cpu-int8", ("hr@10", "cpu-int8", None, False)),
    ("load_1m@cpu-ort", ("load_1m", "cpu-ort", None, False)),  # '1m' is no statistic
    ("pred:accuracy@cpu-int8", ("accuracy", "cpu-int8", None, True)),
    ("top_5", ("top_5", None, None, False)),
])
def test_parse_splits_kind_target_statistic(name, parts):
    key = ColumnKey.parse(name)
    assert (key.kind, key.target, key.statistic, key.predicted) == parts
    assert str(key) == name


def test_target_names_cannot_make_a_key_ambiguous():
    with pytest.raises(Exception, match="starting with a letter"):
        config_from_dict({"targets": [{"name": "10"}]})


def test_objectives_carry_their_target_and_units_follow_the_key():
    config = config_from_dict({"targets": [{"name": "cpu-a"}, {"name": "cpu-b"}]})
    objectives = config.resolved_objectives()
    assert [(o.name, o.target) for o in objectives] == [("accuracy", None), ("latency@cpu-a", "cpu-a"),
                                                         ("latency@cpu-b", "cpu-b")]
    assert Objective("hr@10", "max").target is None
    assert column_unit("latency_p90@cpu-a") == "ms" and column_unit("latency_cv@cpu-a") == "ratio (std/mean)"
    assert column_unit("accuracy@cpu-int8") == "fraction" and column_unit("hr@10@cpu-int8") == "fraction"
    assert column_unit("load_1m@cpu-a") == "load average (1 min)" and column_unit("pred:accuracy") == "fraction"


# Building or splitting column names by hand is what the key replaced: a new site fails here.
HAND_MADE = re.compile(r"""f["'](latency(_[a-z0-9]+)?@|pred:)|["']pred:["']|startswith\(f?["'](latency|pred:|\{quality\})"""
                       r"""|\.split\(["']@["']|(?<!r)partition\(["']@["']\)|f["']\{quality\}@""")


def test_no_core_module_builds_or_splits_column_names_by_hand():
    allowed = {ROOT / "linas_lib" / "api" / "objective.py"}
    found = [f"{p.relative_to(ROOT)}:{i}: {line.strip()}"
             for folder in ("linas_lib", "components", "pipelines", "bench")
             for p in sorted((ROOT / folder).rglob("*.py")) if p not in allowed
             for i, line in enumerate(p.read_text().splitlines(), 1) if HAND_MADE.search(line)]
    assert not found, "\n".join(found)


# ---- typed documents -----------------------------------------------------------------------
@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    from linas_lib.objectives import supernet_measure
    from linas_lib.runs import RunStore
    from linas_lib.search.loop import run_linas
    from linas_lib.supernets import load_supernet

    config = config_from_dict({
        "name": "docs", "seed": 1, "supernet": {"name": "nasbench201", "params": {"dataset": "cifar10"}},
        "targets": [{"name": "nb201", "backend": "tabular"}],
        "search": {"population": 6, "evaluations": 12, "inner": {"evaluations": 200, "population": 20}}})
    net = load_supernet(config.supernet, progress=False)
    folder = tmp_path_factory.mktemp("run")
    summary = run_linas(config, net.space, supernet_measure(config, net), run=RunStore(str(folder)), progress=False)
    return folder, summary


def test_the_summary_is_exactly_the_typed_document(finished):
    folder, summary = finished
    saved = json.loads((folder / "summary.json").read_text())
    assert set(saved) == set(Summary.__annotations__)  # no key the type does not declare, none missing
    check_document(Summary, saved, "summary.json")
    check_document(ParetoDocument, json.loads((folder / "pareto.json").read_text()), "pareto.json")


def test_a_broken_document_names_its_field(finished):
    folder, _ = finished
    saved = json.loads((folder / "summary.json").read_text())
    with pytest.raises(ValueError, match=r"summary.json is not a valid Summary: cache.hits"):
        check_document(Summary, {**saved, "cache": {"hits": "many", "misses": 0}}, "summary.json")


def test_measurement_rows_and_records_are_their_types():
    row = make_row(subnet_id="a", encoding=[1, 2], iteration=0, values={"accuracy": 0.5, "latency@t": 2.0})
    assert check_document(MeasurementRow, row, "row") == row
    with pytest.raises(ValueError, match="row is not a valid MeasurementRow: accuracy"):
        check_document(MeasurementRow, {**row, "accuracy": "high"}, "row")
    record = {"subnet_id": "a", "encoding": [1, 2], "values": {"latency@t": 2.0}, "error": "", "cache": {"s": "miss"}}
    check_document(LatencyOutput, {"target": "t", "rows": [record], "drift": None}, "latency artifact")
    with pytest.raises(ValueError, match=r"accuracy artifact x is not a valid list\[ObjectiveRecord\]: 0.values"):
        check_document(list[ObjectiveRecord], [{**record, "values": None}], "accuracy artifact x")
