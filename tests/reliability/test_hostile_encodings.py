"""Hostile encodings: validation names the gene and its allowed range; valid encodings
round-trip through canonicalize; the CLI paths that take an encoding fail cleanly."""
from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from linas_lib.api.search_space import ActiveWhen, InvalidEncodingError, SearchSpace, Variable
from linas_lib.cli import main
from linas_lib.deploy import parse_subnet

from conftest import SMOKE_YAML


def toy_space() -> SearchSpace:
    return SearchSpace([
        Variable("depth", (1, 2, 3)),
        Variable("b0.width", (16, 32)),
        Variable("b1.width", (16, 32, 64), ActiveWhen("depth", 2)),
        Variable("b2.width", (16, 32, 64), ActiveWhen("depth", 3)),
        Variable("b2.kernel", (3, 5), ActiveWhen("b2.width", 32)),
    ], name="toy")


@st.composite
def spaces(draw) -> SearchSpace:
    """Random conditional spaces: 1-6 genes, 1-5 numeric options, conditions on earlier genes."""
    n = draw(st.integers(1, 6))
    variables = []
    for i in range(n):
        options = tuple(draw(st.lists(st.integers(0, 9), min_size=1, max_size=5, unique=True)))
        cond = None
        if i and draw(st.booleans()):
            parent = variables[draw(st.integers(0, i - 1))]
            cond = ActiveWhen(parent.name, draw(st.sampled_from(parent.options)))
        variables.append(Variable(f"v{i}.gene", options, cond))
    return SearchSpace(variables, name="random")


@st.composite
def space_and_valid(draw):
    space = draw(spaces())
    rows = draw(st.integers(1, 4))
    X = [[draw(st.integers(0, int(u))) for u in space.upper] for _ in range(rows)]
    return space, X


SETTINGS = settings(max_examples=60, deadline=None)


# ---- valid encodings round-trip ---------------------------------------------------------------
@SETTINGS
@given(space_and_valid())
def test_canonicalize_is_idempotent_and_keys_are_stable(case):
    space, X = case
    canon = space.canonicalize(X)
    assert canon.dtype == np.int64 and canon.shape == (len(X), space.n_var)
    np.testing.assert_array_equal(space.canonicalize(canon), canon)
    # lists, int arrays and integral floats are the same encodings
    np.testing.assert_array_equal(space.canonicalize(np.asarray(X, dtype=float)), canon)
    np.testing.assert_array_equal(space.canonicalize(np.asarray(X, dtype=np.int32)), canon)
    assert space.keys(np.asarray(X)) == space.keys(canon) == [space.key(row) for row in X]
    for row, c in zip(X, canon):
        assert space.decode(row) == space.decode(c)
    # a gene that does not exist may take any value without changing the network
    inactive = ~space.active_mask(canon)
    if inactive.any():
        r, c = np.argwhere(inactive)[0]
        other = np.array(X[r])
        other[c] = space.upper[c]
        assert space.key(other) == space.key(X[r])


# ---- invalid encodings name the gene ---------------------------------------------------------
@st.composite
def space_and_invalid(draw):
    space = draw(spaces())
    row: list = [0] * space.n_var
    c = draw(st.integers(0, space.n_var - 1))
    kind = draw(st.sampled_from(["high", "negative", "fraction", "nan", "inf", "string", "none", "bool", "huge"]))
    row[c] = {
        "high": int(space.upper[c]) + draw(st.integers(1, 10**6)),
        "negative": -draw(st.integers(1, 10**6)),
        "fraction": draw(st.integers(0, int(space.upper[c]))) + 0.5,
        "nan": math.nan,
        "inf": draw(st.sampled_from([math.inf, -math.inf])),
        "string": draw(st.sampled_from(["1", "x", "", "0x1"])),
        "none": None,
        "bool": True,
        "huge": draw(st.sampled_from([2**70, -(2**70), 1e300])),
    }[kind]
    return space, row, c, kind


@SETTINGS
@given(space_and_invalid())
def test_any_invalid_gene_raises_naming_the_variable_and_range(case):
    space, row, c, kind = case
    with pytest.raises(InvalidEncodingError) as info:
        space.canonicalize(row)
    message = str(info.value)
    assert isinstance(info.value, ValueError)
    assert space.names[c] in message, (kind, message)
    assert f"0..{space.upper[c]}" in message


@SETTINGS
@given(spaces(), st.integers(0, 9), st.data())
def test_wrong_length_names_every_variable(space, length, data):
    assume(length != space.n_var)
    row = [0] * length
    with pytest.raises(InvalidEncodingError) as info:
        space.validate(row if data.draw(st.booleans()) else np.array([row] * 2, dtype=np.int64))
    assert all(name in str(info.value) for name in space.names)
    assert str(space.n_var) in str(info.value)


@pytest.mark.parametrize("bad", ["0,1,2", b"\x00", 3, 2.0, None, {"depth": 1}, {0, 1}, [[0, 1], [0]], [[[0] * 5]],
                                 [0, [1], 0, 0, 0]])
def test_shapeless_or_ragged_input_is_an_invalid_encoding(bad):
    with pytest.raises(InvalidEncodingError, match="'toy'|gene 1 \\('b0.width'\\)"):
        toy_space().validate(bad)


def test_error_shows_the_options_of_the_gene():
    with pytest.raises(InvalidEncodingError) as info:
        toy_space().validate([0, 0, 0, 3, 0])
    message = str(info.value)
    assert "'b2.width'" in message and "0..2" in message and "[16, 32, 64]" in message and "got 3" in message


def test_the_int_hot_path_returns_the_same_array():
    X = np.zeros((4, 5), dtype=np.int64)
    assert toy_space().validate(X) is X


# ---- the command line: --subnet ----------------------------------------------------------------
@pytest.mark.parametrize("text, names", [
    ("0,1,2", ["depth", "b2.kernel"]),             # too short: every gene listed
    ("0,1,x,0,0", ["b1.width"]),
    ("0,1,1.5,0,0", ["b1.width"]),
    ("0,1,nan,0,0", ["b1.width"]),
    ("0,-1,0,0,0", ["b0.width"]),
    ("0,0,0,0,7", ["b2.kernel", "0..1"]),
    ("[0, 1, 0, 0", ["--subnet"]),
    ('[0, 1, "a", 0, 0]', ["b1.width"]),
    ("[0, 1, NaN, 0, 0]", ["b1.width"]),
    ("[[0, 1, 0, 0, 0]]", ["flat list"]),
    ('{"depth": 0}', ["--subnet"]),
    ("[0, 1, 0, 0, 1e400]", ["b2.kernel"]),
])
def test_parse_subnet_errors_name_the_gene(text, names):
    with pytest.raises(InvalidEncodingError) as info:
        parse_subnet(toy_space(), text)
    message = str(info.value)
    assert message.startswith("--subnet")
    for name in names:
        assert name in message


def test_parse_subnet_accepts_both_notations():
    space = toy_space()
    np.testing.assert_array_equal(parse_subnet(space, "2, 1, 2, 1, 1"), [2, 1, 2, 1, 1])
    np.testing.assert_array_equal(parse_subnet(space, "[0, 1, 2, 1, 1]"), [0, 1, 0, 0, 0])
    np.testing.assert_array_equal(parse_subnet(space, "1,1,2.0,0,0"), [1, 1, 2, 0, 0])
    assert parse_subnet(space, " random ", seed=3).shape == (5,)


def test_cli_measure_with_a_bad_subnet_exits_1_naming_the_gene(monkeypatch, capsys):
    """The encoding is checked against the search space before the super-network loads."""
    import linas_lib.supernets as supernets

    def never(*args, **kwargs):
        raise AssertionError("the super-network must not load for a bad --subnet")

    monkeypatch.setattr(supernets, "load_supernet", never)
    monkeypatch.delenv("LINAS_DEBUG", raising=False)
    genes = ",".join(["0", "5"] + ["0"] * 25)
    assert main(["measure", str(SMOKE_YAML), "--subnet", genes]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"linas: --subnet '{genes}': gene 1 ('s0.b0.kernel') is out of range")
    assert "0..2" in err and "Traceback" not in err


def test_cli_export_of_a_missing_run_directory(tmp_path, capsys):
    missing = tmp_path / "no-such-run"
    assert main(["export", str(missing), "--subnet", "abc"]) == 1
    err = capsys.readouterr().err
    assert "run directory" in err and "does not exist" in err and str(missing) in err
    assert not missing.exists()  # not created as a side effect
    (tmp_path / "empty").mkdir()
    assert main(["export", str(tmp_path / "empty"), "--subnet", "abc"]) == 1
    assert "not a LINAS run directory" in capsys.readouterr().err
