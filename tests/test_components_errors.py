"""Bad input fails at build time with a `ConfigError` that names the field and the choices."""

from __future__ import annotations

import pytest
from variants import FIELDS, names

from tzoo.components import ConfigError, ModelConfig, build_model

TINY = dict(vocab_size=16, d_model=16, heads=4, layers=1, max_len=16)


def _build(**values):
    return build_model({**TINY, **values})


def _error(**values) -> ConfigError:
    with pytest.raises(ConfigError) as error:
        _build(**values)
    return error.value


@pytest.mark.parametrize("field", sorted(FIELDS))
def test_unknown_variant_names_every_allowed_value(field):
    error = _error(**{field: "no_such_variant"})
    assert error.key == f"model.{field}"
    assert "'no_such_variant'" in str(error)
    for name in names(field):
        assert name in str(error), f"{field}: allowed value {name} not listed"


@pytest.mark.parametrize("field,typo,suggestion", [
    ("position", "rotray", "rotary"), ("norm", "rmsnrom", "rmsnorm"), ("ffn", "swiglue", "swiglu"),
    ("attention", "gqaa", "gqa"), ("placement", "sandwhich", "sandwich"),
])
def test_unknown_variant_suggests_the_nearest(field, typo, suggestion):
    assert f"did you mean '{suggestion}'?" in str(_error(**{field: typo}))


def test_unknown_variant_in_a_mapping_spec():
    error = _error(attention={"name": "gpa", "kv_heads": 2})
    assert error.key == "model.attention" and "did you mean 'gqa'?" in str(error)


def test_d_model_not_divisible_by_heads():
    error = _error(d_model=18, heads=4)
    assert error.key == "model.heads"
    assert "18" in str(error) and "divisible" in str(error)
    assert "1, 2, 3, 6, 9, 18" in str(error)  # the head counts that would work


def test_kv_heads_must_divide_heads():
    error = _error(attention={"name": "gqa", "kv_heads": 3})
    assert error.key == "model.attention.kv_heads"
    assert "kv_heads (3) must divide heads (4)" in str(error)
    assert "allowed: 1, 2, 4" in str(error)
    assert _error(attention={"name": "gqa", "kv_heads": 0}).key == "model.attention.kv_heads"


def test_unknown_variant_argument_names_the_field_and_argument():
    error = _error(attention={"name": "gqa", "kv_head": 2})
    assert "'kv_head'" in str(error) and "kv_heads" in str(error)
    assert error.key == "model.attention"
    error = _error(position={"name": "rotary", "bse": 500.0})
    assert "'bse'" in str(error) and "base" in str(error)
    assert error.key == "model.position"
    # what the model passes itself is left out: the norm gets d_model, but never `bias`
    error = _error(norm={"name": "layernorm", "epsilon": 1e-6})
    assert str(error).endswith("its arguments: bias, eps")
    error = _error(position={"name": "learned", "size": 8})
    assert str(error).endswith("its arguments: max_len")  # a default a spec may override


def test_learned_positions_without_max_len():
    error = _error(position="learned", max_len=None)
    assert error.key == "model.max_len"
    assert "maximum length" in str(error)
    _build(position={"name": "learned", "max_len": 8}, max_len=None)  # given in the spec: fine


def test_prefix_mask_without_a_length():
    error = _error(mask="prefix")
    assert error.key == "model.mask"
    assert "prefix length" in str(error) and "length: N" in str(error)
    assert _error(mask={"name": "prefix", "length": 0}).key == "model.mask.length"
    # a task that supplies prefix lengths per sequence makes it buildable
    build_model(ModelConfig(**TINY, mask="prefix"), task_supplies_prefix=True)


@pytest.mark.parametrize("field,value", [
    ("d_model", 0), ("heads", -1), ("layers", 1.5), ("vocab_size", True), ("max_len", 0),
    ("decoder_layers", "2"), ("dropout", 1.0), ("ffn_mult", 0),
])
def test_out_of_range_numbers(field, value):
    assert _error(**{field: value}).key == f"model.{field}"


def test_unknown_model_field():
    error = _error(nrom="rmsnorm")
    assert error.key == "model.nrom"
    assert "did you mean 'norm'?" in str(error)


def test_odd_sizes_for_sinusoidal_and_rotary():
    assert _error(d_model=15, heads=3, position="sinusoidal").key == "model.d_model"
    assert _error(d_model=12, heads=4, position="rotary").key == "model.d_model"  # head dim 3


def test_errors_render_with_their_key():
    error = _error(norm="batchnorm")
    assert str(error).startswith("key 'model.norm': unknown norms variant 'batchnorm'")
    assert isinstance(error, ValueError)  # callers that catch ValueError still do
