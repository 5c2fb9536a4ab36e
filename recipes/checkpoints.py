"""The final model of a run, and loading it back (reports, `tzoo generate`).

`checkpoints/final.pt` holds plain tensors and plain data only, so it loads with
`torch.load(weights_only=True)`; the tokenizer sits beside it as JSON.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import yaml

from tzoo.components import ModelConfig, build_model
from tzoo.components.errors import ConfigError

from .rundir import CONFIG, FINAL_CHECKPOINT, TOKENIZER, RunSummary, atomic_path, read_summary
from .tokenization import Tokenizer, load_tokenizer


def save_final(run_dir: Path, model: torch.nn.Module, task_supplies_prefix: bool,
               state_dict: dict[str, torch.Tensor] | None = None) -> None:
    """`state_dict`: the model's weights where `model` holds only a shard of them (FSDP)."""
    state = model.state_dict() if state_dict is None else state_dict
    payload = {
        "model_config": model.config.to_dict(),
        "task_supplies_prefix": task_supplies_prefix,
        "state_dict": {k: v.detach().cpu() for k, v in state.items()},
    }
    with atomic_path(run_dir / FINAL_CHECKPOINT) as temporary:
        torch.save(payload, temporary)


@dataclass
class LoadedRun:
    model: torch.nn.Module
    tokenizer: Tokenizer
    config: dict[str, Any]
    run_dir: Path
    #: the run's summary.json (None for a run directory without one)
    summary: RunSummary | None = None

    @property
    def metrics(self) -> dict[str, float | None]:
        """The run's final metrics, as its summary records them."""
        return dict(self.summary.metrics) if self.summary else {}


def load_run(run_dir: str | Path) -> LoadedRun:
    """The trained model (eval mode), its tokenizer, resolved config and summary."""
    run_dir = Path(run_dir)
    path = run_dir / FINAL_CHECKPOINT
    if not path.is_file():
        raise ConfigError(f"no final checkpoint at {path} (has the run completed?)")
    payload = torch.load(path, map_location="cpu", weights_only=True)
    model = build_model(ModelConfig.from_dict(payload["model_config"]),
                        task_supplies_prefix=payload["task_supplies_prefix"])
    model.load_state_dict(payload["state_dict"])
    model.eval()
    config_path = run_dir / CONFIG
    config = yaml.safe_load(config_path.read_text()) if config_path.is_file() else {}
    return LoadedRun(model, load_tokenizer(run_dir / TOKENIZER), config, run_dir,
                     read_summary(run_dir))
