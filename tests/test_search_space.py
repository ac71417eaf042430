"""SearchSpace: canonical encodings, stable keys, sampling and validation errors."""
from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from linas_lib.api.search_space import ActiveWhen, InvalidEncodingError, SearchSpace, Variable
from linas_lib.supernets.elastic_cnn import DEPTHS, EXPANDS, KERNELS, STAGES, build_space


@pytest.fixture(scope="module")
def space() -> SearchSpace:
    return build_space()


def _index(space: SearchSpace, name: str) -> int:
    return space.names.index(name)


def _shallow_encoding(space: SearchSpace) -> np.ndarray:
    """Stage 0 at its minimum depth (2), so blocks b2 and b3 of stage 0 are hidden."""
    x = np.ones(space.n_var, dtype=np.int64)
    x[_index(space, "s0.depth")] = DEPTHS.index(2)
    return x


# ---- the elastic_cnn space ---------------------------------------------------
def test_elastic_cnn_shape(space):
    """One depth gene per stage plus kernel/expand genes for every possible block."""
    assert space.n_var == len(STAGES) * (1 + 2 * max(DEPTHS))
    for s in range(len(STAGES)):
        assert space.variables[_index(space, f"s{s}.depth")].options == DEPTHS
        assert space.variables[_index(space, f"s{s}.b0.kernel")].options == KERNELS
        assert space.variables[_index(space, f"s{s}.b3.expand")].options == EXPANDS


def test_hidden_genes_do_not_change_identity(space):
    """Encodings that differ only in genes hidden by a stage depth are one network."""
    a = _shallow_encoding(space)
    b = a.copy()
    b[_index(space, "s0.b2.kernel")] = 2
    b[_index(space, "s0.b3.expand")] = 0
    assert space.key(a) == space.key(b)
    np.testing.assert_array_equal(space.canonicalize(a), space.canonicalize(b))
    # hidden genes are zeroed in the canonical form, active ones untouched
    canon = space.canonicalize(b)[0]
    assert canon[_index(space, "s0.b2.kernel")] == 0
    assert canon[_index(space, "s0.b3.expand")] == 0
    assert canon[_index(space, "s0.b1.kernel")] == 1
    assert space.keys(np.vstack([a, b])) == [space.key(a)] * 2


def test_active_genes_change_identity(space):
    """Changing an active gene, or the depth that reveals a block, gives a different network."""
    a = _shallow_encoding(space)
    b = a.copy()
    b[_index(space, "s0.b1.kernel")] = 2  # block 1 always exists
    assert space.key(a) != space.key(b)
    deeper = a.copy()
    deeper[_index(space, "s0.depth")] = DEPTHS.index(3)  # reveals block 2
    assert space.key(a) != space.key(deeper)


def test_decode_lists_only_active_genes(space):
    """decode() gives option values, and only for genes that exist."""
    values = space.decode(_shallow_encoding(space))
    assert values["s0.depth"] == 2
    assert values["s0.b0.kernel"] == KERNELS[1]
    assert "s0.b2.kernel" not in values and "s0.b3.expand" not in values
    assert values["s1.depth"] == DEPTHS[1] and "s1.b2.kernel" in values and "s1.b3.kernel" not in values


def test_key_is_stable_across_input_types(space):
    """A list, an int array and an integral float array of one encoding share one key."""
    x = _shallow_encoding(space)
    assert space.key(x.tolist()) == space.key(x) == space.key(x.astype(float))
    assert len(space.key(x)) == 12


# ---- sampling ------------------------------------------------------------------
def test_sample_is_deterministic_for_a_seed(space):
    np.testing.assert_array_equal(space.sample(20, 7), space.sample(20, 7))
    assert not np.array_equal(space.sample(20, 7), space.sample(20, 8))


def test_sample_returns_distinct_canonical_encodings(space):
    X = space.sample(200, 3)
    assert X.shape == (200, space.n_var) and X.dtype == np.int64
    np.testing.assert_array_equal(space.canonicalize(X), X)
    assert len(set(space.keys(X))) == 200
    assert ((X >= 0) & (X <= space.upper)).all()


def test_sample_respects_exclude(space):
    first = space.sample(30, 0)
    excluded = set(space.keys(first))
    second = space.sample(30, 0, exclude=excluded)
    assert excluded.isdisjoint(space.keys(second))
    assert len(set(space.keys(second))) == 30


def test_sample_can_exhaust_a_small_space_and_then_refuses():
    """All 4 networks of a 2x2 space can be drawn; asking for a 5th is an error, not a hang."""
    tiny = SearchSpace([Variable("a", (0, 1)), Variable("b", ("x", "y"))], name="tiny")
    X = tiny.sample(4, 0)
    assert sorted(map(tuple, X.tolist())) == [(0, 0), (0, 1), (1, 0), (1, 1)]
    with pytest.raises(ValueError, match="tiny"):
        tiny.sample(5, 0)
    with pytest.raises(ValueError):
        tiny.sample(1, 0, exclude=tiny.keys(X))


# ---- validation ----------------------------------------------------------------
def test_wrong_length_is_rejected(space):
    with pytest.raises(InvalidEncodingError, match=str(space.n_var)):
        space.validate([0] * (space.n_var - 1))
    with pytest.raises(InvalidEncodingError):
        space.canonicalize(np.zeros((3, space.n_var + 1), dtype=int))


def test_non_integral_float_gene_names_the_variable(space):
    x = np.zeros(space.n_var, dtype=float)
    x[_index(space, "s1.b0.expand")] = 1.5
    with pytest.raises(InvalidEncodingError, match=r"s1\.b0\.expand"):
        space.validate(x)


def test_out_of_range_gene_names_variable_and_options(space):
    x = np.zeros(space.n_var, dtype=np.int64)
    x[_index(space, "s2.b1.kernel")] = 3
    with pytest.raises(InvalidEncodingError) as err:
        space.validate(x)
    message = str(err.value)
    assert "s2.b1.kernel" in message
    assert str(list(KERNELS)) in message
    x[_index(space, "s2.b1.kernel")] = -1
    with pytest.raises(InvalidEncodingError, match=r"s2\.b1\.kernel"):
        space.key(x)


@pytest.mark.parametrize("bad", [math.nan, math.inf])
def test_non_finite_gene_is_rejected(space, bad):
    x = np.zeros(space.n_var, dtype=float)
    x[0] = bad
    with pytest.raises(InvalidEncodingError):
        space.validate(x)


def test_invalid_encoding_error_is_a_value_error():
    assert issubclass(InvalidEncodingError, ValueError)


# ---- hand-built conditional spaces ------------------------------------------------
def test_nested_conditions_hide_descendants():
    """A gene hidden by its parent hides its own dependents too."""
    space = SearchSpace(
        [
            Variable("layers", (1, 2, 3)),
            Variable("width2", (8, 16), ActiveWhen("layers", 2)),
            Variable("act2", ("relu", "gelu"), ActiveWhen("layers", 2)),
            Variable("heads2", (1, 2, 4), ActiveWhen("width2", 16)),
            Variable("width3", (8, 16), ActiveWhen("layers", 3)),
        ],
        name="mlp",
    )
    X = np.array(
        [
            [0, 1, 1, 2, 1],  # 1 layer: everything else is hidden
            [1, 0, 1, 2, 1],  # 2 layers, width 8: heads2 hidden, width3 hidden
            [1, 1, 1, 2, 1],  # 2 layers, width 16: heads2 active
            [2, 1, 0, 1, 1],  # 3 layers: all active
        ]
    )
    np.testing.assert_array_equal(
        space.active_mask(X),
        [
            [True, False, False, False, False],
            [True, True, True, False, False],
            [True, True, True, True, False],
            [True, True, True, True, True],
        ],
    )
    np.testing.assert_array_equal(
        space.canonicalize(X), [[0, 0, 0, 0, 0], [1, 0, 1, 0, 0], [1, 1, 1, 2, 0], [2, 1, 0, 1, 1]]
    )
    assert space.decode(X[2]) == {"layers": 2, "width2": 16, "act2": "gelu", "heads2": 4}
    assert len(set(space.keys(space.sample(25, 0)))) == 25  # 1 + 8 + 16 distinct networks


def test_condition_on_options_listed_in_descending_order():
    """ActiveWhen compares option *values*: with options (4, 3, 2), 'depth >= 3' holds for 4 and 3."""
    space = SearchSpace([Variable("depth", (4, 3, 2)), Variable("extra", (0, 1), ActiveWhen("depth", 3))])
    mask = space.active_mask(np.array([[0, 1], [1, 1], [2, 1]]))[:, 1]
    assert mask.tolist() == [True, True, False]
    assert space.decode([0, 1]) == {"depth": 4, "extra": 1}
    assert space.decode([2, 1]) == {"depth": 2}


def test_condition_must_name_an_earlier_variable():
    with pytest.raises(ValueError, match="earlier variable"):
        SearchSpace([Variable("a", (0, 1), ActiveWhen("b", 1)), Variable("b", (0, 1))])
    with pytest.raises(ValueError, match="earlier variable"):
        SearchSpace([Variable("a", (0, 1), ActiveWhen("nope", 1))])


def test_space_construction_errors():
    with pytest.raises(ValueError, match="unique"):
        SearchSpace([Variable("a", (0, 1)), Variable("a", (0, 1))])
    with pytest.raises(ValueError, match="no options"):
        Variable("a", ())
    with pytest.raises(ValueError):
        SearchSpace([])


# ---- properties ----------------------------------------------------------------------
_SPACE = build_space()


@st.composite
def raw_encodings(draw, space: SearchSpace = _SPACE):
    return np.array([draw(st.integers(0, int(u))) for u in space.upper], dtype=np.int64)


@settings(max_examples=200, deadline=None, database=None)
@given(raw_encodings())
def test_canonicalize_is_idempotent_and_key_preserving(x):
    canon = _SPACE.canonicalize(x)
    np.testing.assert_array_equal(_SPACE.canonicalize(canon), canon)
    assert _SPACE.key(canon[0]) == _SPACE.key(x)
    # canonicalization keeps active genes, zeroes hidden ones, and never changes what is active
    active = _SPACE.active_mask(x)[0]
    np.testing.assert_array_equal(canon[0][active], x[active])
    assert (canon[0][~active] == 0).all()
    np.testing.assert_array_equal(_SPACE.active_mask(canon)[0], active)


@settings(max_examples=100, deadline=None, database=None)
@given(raw_encodings(), raw_encodings())
def test_equal_keys_iff_equal_canonical_forms(x, y):
    same_network = np.array_equal(_SPACE.canonicalize(x), _SPACE.canonicalize(y))
    assert (_SPACE.key(x) == _SPACE.key(y)) == same_network


def test_the_active_mask_is_the_gene_by_gene_rule_on_random_nested_spaces():
    """One lookup per nesting level gives what walking the conditions gene by gene gives."""
    rng = np.random.default_rng(0)
    for trial in range(30):
        variables = []
        for i in range(int(rng.integers(1, 12))):
            options = tuple(int(v) for v in rng.permutation(int(rng.integers(1, 5))))
            cond = None
            if i and rng.random() < 0.7:
                parent = variables[int(rng.integers(0, i))]
                cond = ActiveWhen(parent.name, float(rng.choice(parent.options)))
            variables.append(Variable(f"g{i}", options, cond))
        space = SearchSpace(variables)
        X = rng.integers(0, space.cardinalities, size=(40, space.n_var))
        expected = np.ones(X.shape, dtype=bool)
        index = {v.name: i for i, v in enumerate(variables)}
        for i, var in enumerate(variables):
            if var.active_when is not None:
                p = index[var.active_when.variable]
                values = np.asarray(variables[p].options, dtype=float)[X[:, p]]
                expected[:, i] = expected[:, p] & (values >= var.active_when.at_least)
        np.testing.assert_array_equal(space.active_mask(X), expected, err_msg=str(trial))


def test_shape_arrays_are_read_only():
    space = SearchSpace([Variable("a", (1, 2, 3)), Variable("b", (0, 1))])
    assert space.cardinalities.tolist() == [3, 2] and space.upper.tolist() == [2, 1]
    with pytest.raises(ValueError):
        space.upper[0] = 7  # shared by every validation: not to be changed in place
