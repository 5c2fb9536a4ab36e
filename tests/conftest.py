"""Shared fixtures: a tiny, fast experiment and a helper that writes YAML files."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml

#: a language model small enough to train 20 steps in well under a second on one CPU core
TINY: dict[str, Any] = {
    "experiment": "tiny",
    "task": {"name": "lm", "objective": "causal"},
    "data": {
        "corpus": "synthetic:copy",
        "options": {"vocab": 8, "length": 8,
                    "samples": {"train": 200, "validation": 20, "test": 20, "test_long": 10}},
        "context": 32,
        "batch_size": 8,
    },
    "model": {"d_model": 16, "layers": 1, "heads": 2, "position": "rotary"},
    "train": {"steps": 20, "warmup": 2, "val_every": 10, "checkpoint_every": 10,
              "log_every": 1, "progress": False, "accelerator": "cpu", "devices": 1},
    "eval": {"batches": 2, "context_multipliers": [1], "test_batches": 2},
}


@pytest.fixture(scope="module")
def one_thread():
    """Tiny tensors: one thread is faster, and immune to contention on a shared machine.
    Modules of small-model tests opt in with `pytestmark = pytest.mark.usefixtures(...)`."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture
def tiny() -> dict[str, Any]:
    """A fresh copy of the tiny experiment, to modify freely."""
    return copy.deepcopy(TINY)


@pytest.fixture
def write_yaml(tmp_path: Path):
    """write_yaml(name, data_or_text) -> the path of a YAML file under tmp_path."""

    def write(name: str, content: dict[str, Any] | str) -> Path:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        text = content if isinstance(content, str) else yaml.safe_dump(content, sort_keys=False)
        path.write_text(text)
        return path

    return write


@pytest.fixture
def drawn_figures(monkeypatch: pytest.MonkeyPatch) -> list:
    """The matplotlib figures the report plots draw, kept for the test instead of written out
    (each plotting module binds `_save` by name, so each is patched)."""
    from tzoo.reports import plots, sweep_landscape

    drawn: list = []

    def keep(fig, path):
        drawn.append(fig)
        return path

    for module in (plots, sweep_landscape):
        monkeypatch.setattr(module, "_save", keep)
    return drawn
