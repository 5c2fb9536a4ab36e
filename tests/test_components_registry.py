"""The registries: names, aliases, specs with arguments, listing, and entry-point plugins."""

from __future__ import annotations

import sys
import textwrap
import types
from collections import defaultdict
from importlib import metadata

import pytest
import torch
from variants import model_config, names

import tzoo.components.registry as registry_module
from tzoo.components import (
    ARCHITECTURES,
    REGISTRIES,
    ConfigError,
    ModelConfig,
    Registry,
    build_model,
    list_variants,
)
from tzoo.components.families import (
    ATTENTION,
    MASKS,
    MODEL_SUPPLIED,
    NORMS,
    POSITIONS,
    VARIANT_FIELDS,
)
from tzoo.components.positions import NoPosition, Rotary
from tzoo.components.registry import accepted_arguments


@pytest.fixture
def scratch() -> Registry:
    registry: Registry = Registry("widgets", "a test family")

    @registry.register("round", aliases=("circle",))
    class Round:
        """A round widget.

        More text that the summary leaves out."""

        def __init__(self, size: int, colour: str = "red"):
            self.size, self.colour = size, colour

    @registry.register("square")
    class Square:
        """A square widget."""

        def __init__(self, **anything):
            self.anything = anything

    return registry


def test_duplicate_names_and_aliases_are_refused(scratch):
    with pytest.raises(ValueError, match="'round' is already registered"):
        scratch.register("round")(type("Other", (), {}))
    with pytest.raises(ValueError, match="'circle' is already registered"):
        scratch.register("oval", aliases=("circle",))(type("Other", (), {}))
    with pytest.raises(ValueError, match="already registered"):
        POSITIONS.register("rotary")(type("Impostor", (), {}))
    assert POSITIONS.get("rotary") is Rotary  # the original is untouched


def test_unknown_name_lists_the_choices_and_suggests_the_nearest():
    with pytest.raises(ConfigError) as error:
        POSITIONS.get("rotery", key="model.position")
    message = str(error.value)
    assert "did you mean 'rotary'?" in message
    for name in POSITIONS.names():
        assert name in message
    assert error.value.key == "model.position"
    with pytest.raises(ConfigError) as error:
        POSITIONS.get("zzzzzz")
    assert "did you mean" not in str(error.value)  # nothing close: no guess


def test_build_from_a_name_or_a_mapping_with_context(scratch):
    widget = scratch.build("round", size=3)
    assert (widget.size, widget.colour) == (3, "red")
    widget = scratch.build({"name": "round", "colour": "blue"}, size=4)
    assert (widget.size, widget.colour) == (4, "blue")
    # the spec's own arguments win over the context
    assert scratch.build({"name": "round", "size": 9}, size=4).size == 9
    # context a variant does not take is simply not passed
    assert scratch.build("round", size=1, unrelated=True).size == 1
    # a variant with **kwargs takes everything
    assert scratch.build({"name": "square", "a": 1}, b=2).anything == {"a": 1, "b": 2}
    # the real registries
    relative = POSITIONS.build({"name": "relative", "num_buckets": 8}, heads=4)
    assert relative.table.weight.shape == (8, 4)
    gqa = ATTENTION.build({"name": "gqa", "kv_heads": 2}, d_model=16, heads=4)
    assert (gqa.heads, gqa.kv_heads) == (4, 2)
    assert NORMS.build({"name": "rmsnorm", "eps": 1e-3}, d_model=8).eps == 1e-3


def test_unknown_argument_is_a_config_error_naming_it(scratch):
    with pytest.raises(ConfigError, match="'colur'") as error:
        scratch.build({"name": "round", "colur": "blue"}, size=1, key="model.widget")
    assert "colour" in str(error.value)  # the arguments it does take
    assert error.value.key == "model.widget"
    with pytest.raises(ConfigError, match="'kv_head'"):
        ATTENTION.build({"name": "gqa", "kv_head": 2}, d_model=16, heads=4)


@pytest.mark.parametrize("spec", [3, None, {"kv_heads": 2}, {"name": 5}])
def test_malformed_spec_is_a_config_error(spec, scratch):
    with pytest.raises(ConfigError, match="a variant name or a mapping"):
        scratch.build(spec, size=1)


def test_deprecated_aliases_resolve_with_a_warning(scratch):
    with pytest.warns(DeprecationWarning, match="'circle' was renamed to 'round'"):
        assert scratch.resolve("circle") == "round"
    with pytest.warns(DeprecationWarning, match="renamed to 'rotary'"):
        assert POSITIONS.get("rope") is Rotary
    with pytest.warns(DeprecationWarning, match="renamed to 'none'"):
        assert POSITIONS.get("nope") is NoPosition
    assert "rope" in POSITIONS and "rotary" in POSITIONS and "nothing" not in POSITIONS
    assert "rope" not in POSITIONS.names()  # aliases are not listed
    with pytest.warns(DeprecationWarning):
        model = build_model(ModelConfig(vocab_size=16, d_model=16, heads=2, layers=1,
                                        position="rope"))
    assert isinstance(model.position, Rotary)


def test_list_variants_filters_by_pattern():
    rows = list_variants("positions.*")
    assert {name for _, name, _ in rows} == set(POSITIONS.names())
    assert {family for family, _, _ in rows} == {"positions"}
    assert {name for _, name, _ in list_variants("*glu")} == {"swiglu", "geglu"}
    assert [(f, n) for f, n, _ in list_variants("norms.rms*")] == [("norms", "rmsnorm")]
    assert {f for f, _, _ in list_variants("attention")} == {"attention"}  # a bare family
    everything = list_variants()
    assert len(everything) == sum(len(r.names()) for r in REGISTRIES.values())
    for _, _, summary in everything:
        assert summary and "\n" not in summary and len(summary) <= 110


def test_accepted_arguments_are_the_constructors(scratch):
    assert accepted_arguments(Rotary) == {"head_dim", "base"}
    assert accepted_arguments(scratch.get("round")) == {"size", "colour"}
    assert accepted_arguments(scratch.get("square")) is None  # **kwargs: anything goes


def test_unregister_removes_a_variant_and_its_aliases(scratch):
    round_class = scratch.unregister("round")
    assert round_class.__name__ == "Round"
    assert "round" not in scratch and "circle" not in scratch and scratch.names() == ["square"]
    scratch.register("round", aliases=("circle",))(round_class)  # both names are free again
    assert scratch.get("round") is round_class
    with pytest.raises(ValueError, match="no variant is registered as 'oval'"):
        scratch.unregister("oval")


def test_examples_carry_the_arguments_a_variant_declares(scratch):
    assert scratch.examples() == ["round", "square"]  # nothing declared: the bare names
    decoder, encoder = ModelConfig(heads=4), ModelConfig(arch="encoder", heads=4)
    assert POSITIONS.example("alibi", decoder) == "alibi"  # causal: no argument needed
    assert POSITIONS.example("alibi", encoder) == {"name": "alibi", "symmetric": True}
    assert ATTENTION.example("gqa", decoder) == {"name": "gqa", "kv_heads": 2}
    assert ATTENTION.example("gqa", ModelConfig(heads=3)) == {"name": "gqa", "kv_heads": 1}
    assert MASKS.example("prefix", decoder) == {"name": "prefix", "length": 3}
    assert POSITIONS.examples(encoder) == [POSITIONS.example(n, encoder) for n in POSITIONS.names()]
    with pytest.warns(DeprecationWarning):
        assert POSITIONS.example("rope", decoder) == "rotary"  # under its current name


def test_model_supplied_is_what_the_model_passes(monkeypatch):
    """What config validation leaves out of a variant's listed arguments is exactly what
    model.py passes that family's variants itself (and a position's `max_len`, a default that a
    spec may override, which stays listed)."""
    field_of = {registry.family: field for field, registry in VARIANT_FIELDS.items()}
    passed: dict[str, set[str]] = defaultdict(set)
    build = Registry.build

    def spy(self, spec, *, key=None, **context):
        passed[field_of[self.family]] |= set(context)
        return build(self, spec, key=key, **context)

    monkeypatch.setattr(Registry, "build", spy)
    for arch in names("arch"):
        build_model(model_config(arch=arch, d_model=16, heads=4, layers=1, max_len=8))
    assert passed.pop("position") - {"max_len"} == MODEL_SUPPLIED["position"]
    for field in VARIANT_FIELDS:
        if field not in ("arch", "position"):
            assert passed.pop(field, set()) == MODEL_SUPPLIED[field], field
    # an architecture is called with the config alone (build_model)
    for name in names("arch"):
        assert accepted_arguments(ARCHITECTURES.get(name)) == MODEL_SUPPLIED["arch"]
    assert not passed


def test_summaries_are_the_first_paragraph(scratch):
    assert dict(scratch.describe()) == {"round": "A round widget.", "square": "A square widget."}


PLUGIN = textwrap.dedent('''
    from tzoo.components.families import POSITIONS
    from tzoo.components.positions import PositionEncoding


    @POSITIONS.register("plugin_position")
    class PluginPosition(PositionEncoding):
        """A position variant from a third-party package."""

        uses_embed = True

        def __init__(self, d_model: int, offset: float = 1.0):
            super().__init__()
            self.offset = offset

        def embed(self, x, positions):
            return x + self.offset
''')


def test_entry_point_plugins_register_variants(tmp_path, monkeypatch):
    (tmp_path / "tzoo_test_plugin.py").write_text(PLUGIN)
    monkeypatch.syspath_prepend(str(tmp_path))
    entry = metadata.EntryPoint(name="demo", value="tzoo_test_plugin",
                                group=registry_module.ENTRY_POINT_GROUP)
    groups = []

    def entry_points(*, group):
        groups.append(group)
        return [entry] if group == registry_module.ENTRY_POINT_GROUP else []

    monkeypatch.setattr(registry_module, "metadata", types.SimpleNamespace(
        entry_points=entry_points))
    monkeypatch.setattr(registry_module, "_plugins_loaded", False)
    # the registry is shared by the whole session: take the plugin out again afterwards
    monkeypatch.setattr(POSITIONS, "_entries", dict(POSITIONS._entries))
    monkeypatch.delitem(sys.modules, "tzoo_test_plugin", raising=False)

    assert "plugin_position" in POSITIONS.names()  # loading happens on first use
    assert groups == ["tzoo.components"]
    assert ("positions", "plugin_position",
            "A position variant from a third-party package.") in list_variants("positions.*")
    POSITIONS.names()
    assert groups == ["tzoo.components"]  # loaded once
    model = build_model(ModelConfig(vocab_size=16, d_model=16, heads=2, layers=1,
                                    position={"name": "plugin_position", "offset": 2.0}))
    assert model.position.offset == 2.0
    assert torch.isfinite(model(torch.zeros(1, 4, dtype=torch.long))).all()
    monkeypatch.delitem(sys.modules, "tzoo_test_plugin")


def test_plugin_modules_named_explicitly(tmp_path, monkeypatch):
    (tmp_path / "tzoo_test_plugin_two.py").write_text(
        PLUGIN.replace("plugin_position", "plugin_position_two"))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(POSITIONS, "_entries", dict(POSITIONS._entries))
    registry_module.load_plugins(("tzoo_test_plugin_two",))
    assert "plugin_position_two" in POSITIONS
    monkeypatch.delitem(sys.modules, "tzoo_test_plugin_two")
    with pytest.raises(ConfigError, match="cannot import plugin module 'tzoo_no_such_plugin'"):
        registry_module.load_plugins(("tzoo_no_such_plugin",))
