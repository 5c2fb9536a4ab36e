"""A new variant is covered by every family-wide test by writing its class, and nothing else.

A throwaway position variant is registered for one test: ALiBi again under a test-only name,
so, like ALiBi, it needs an argument in a model that sees both ways (which its class declares
through the inherited `example_arguments`). The component test modules are then collected
afresh, their parametrisations computed as pytest computes them, and every parametrised test
that covers ALiBi must cover the newcomer too; a few of those tests then run on it.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from variants import combinations, model_config, names

from tzoo.components.families import POSITIONS
from tzoo.components.positions import ALiBi

NEWCOMER, MODEL = "throwaway_alibi", "alibi"
HERE = Path(__file__)


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def newcomer() -> Iterator[type]:
    """The throwaway variant, registered for the test and unregistered after it, whatever it
    did: the registries are shared by the whole session."""

    class ThrowawayALiBi(ALiBi):
        """ALiBi under a test-only name."""

    POSITIONS.register(NEWCOMER)(ThrowawayALiBi)
    try:
        yield ThrowawayALiBi
    finally:
        POSITIONS.unregister(NEWCOMER)
    assert NEWCOMER not in POSITIONS


def _collect_afresh(path: Path) -> ModuleType:
    """Import a test module again under a scratch name (sys.modules untouched), so that its
    parametrisations are computed from what is registered now."""
    spec = importlib.util.spec_from_file_location(f"afresh_{path.stem}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _strings(value: Any) -> set[str]:
    """Every string inside a parameter set (tuples, mappings, `pytest.param`s)."""
    if isinstance(value, str):
        return {value}
    if hasattr(value, "values") and not isinstance(value, dict):  # a pytest.param
        value = value.values
    if isinstance(value, dict):
        value = [*value.keys(), *value.values()]
    if isinstance(value, (list, tuple)):
        return set().union(*(_strings(item) for item in value))
    return set()


def _parameter_sets(module: ModuleType) -> Iterator[tuple[str, list[set[str]]]]:
    """(test name, the strings of each of its parameter sets) for every parametrize mark."""
    for name, function in vars(module).items():
        if not name.startswith("test_"):
            continue
        for mark in getattr(function, "pytestmark", []):
            if mark.name == "parametrize":
                yield name, [_strings(values) for values in mark.args[1]]


def test_every_test_that_covers_a_variant_covers_a_new_one(newcomer):
    modules = {path.stem: _collect_afresh(path)
               for path in sorted(HERE.parent.glob("test_components_*.py")) if path != HERE}
    covering: dict[str, tuple[int, int]] = {}  # test -> (ALiBi's cases, the newcomer's)
    for stem, module in modules.items():
        for test, parameter_sets in _parameter_sets(module):
            model = sum(MODEL in strings for strings in parameter_sets)
            if model:
                newcomer_cases = sum(NEWCOMER in strings for strings in parameter_sets)
                covering[f"{stem}::{test}"] = (model, newcomer_cases)
    assert len(covering) >= 10, covering  # the family-wide tests were found at all
    for test, (model, newcomer_cases) in covering.items():
        assert newcomer_cases >= 1, f"{test} does not cover a new variant"
        if not test.startswith("test_components_grid::"):  # there: its own pairwise rows
            assert newcomer_cases == model, f"{test} covers a new variant in fewer cases"

    # ...and they pass for it: the combinations its example arguments make buildable run, and
    # it brings no refusal beyond the documented ones.
    positions, grid = modules["test_components_positions"], modules["test_components_grid"]
    for arch in names("arch"):
        positions.test_at_four_times_the_training_length_positions_extrapolate_or_refuse(
            NEWCOMER, arch)
    grid.test_covering_array_covers_every_possible_pair()
    grid.test_only_the_documented_pairs_are_impossible()
    rows = [row for row in grid.ROWS if row["position"] == NEWCOMER]
    assert rows
    for row in rows:
        grid.test_combination_trains_one_step(row)


def test_a_new_variant_gets_its_declared_arguments(newcomer):
    assert NEWCOMER in names("position", arch="encoder")
    assert (NEWCOMER, "bidirectional") in combinations("position", "mask")
    assert model_config(arch="encoder", position=NEWCOMER).position == {
        "name": NEWCOMER, "symmetric": True}  # under its own name, not its parent's
    assert model_config(position=NEWCOMER).position == NEWCOMER
