"""A trained run, exported for use outside the suite: `tzoo export RUN --format safetensors`.

    <out>/model.safetensors      the weights, one tensor per state-dict name (a tied output
                                 layer's weight is stored under both of its names), so
                                 `model.load_state_dict(safetensors.torch.load_file(...))` works
    <out>/config.json            the model's configuration, what the run was, and how to
                                 rebuild the model (`rebuild`)
    <out>/tokenizer.json         HuggingFace `tokenizers`' format (+ tokenizer.tzoo.json)

`load_exported(out)` rebuilds the model and tokenizer in one call; `config.json`'s `rebuild` is
the same in four lines for a reader who has only the folder and `pip install transformer-zoo`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from tzoo.components import ModelConfig, build_model
from tzoo.components.errors import ConfigError, unknown_choice

from . import rundir
from .checkpoints import load_run
from .tokenization import Tokenizer, load_tokenizer

FORMATS = ("safetensors",)
WEIGHTS = "model.safetensors"
CONFIG = "config.json"
FORMAT_NAME = "tzoo-safetensors"
REBUILD = (
    "import json; from safetensors.torch import load_file; "
    "from tzoo.components import ModelConfig, build_model; "
    "config = json.load(open('config.json')); "
    "model = build_model(ModelConfig.from_dict(config['model']), "
    "task_supplies_prefix=config['task_supplies_prefix']); "
    "model.load_state_dict(load_file('model.safetensors')); model.eval()"
)


def export_run(run_dir: str | Path, out: str | Path | None = None,
               fmt: str = "safetensors") -> Path:
    """Write the run's final model, configuration and tokenizer to `out` (default:
    <run>/export/); return the folder."""
    if fmt not in FORMATS:
        raise ConfigError(unknown_choice("export format", fmt, FORMATS), key="--format")
    from safetensors.torch import save_file

    run_dir = Path(run_dir)
    loaded = load_run(run_dir)
    target = Path(out) if out else run_dir / "export"
    target.mkdir(parents=True, exist_ok=True)
    # safetensors refuses tensors that share memory (a tied output layer): store a copy each
    tensors = {name: value.detach().cpu().contiguous().clone()
               for name, value in loaded.model.state_dict().items()}
    with rundir.atomic_path(target / WEIGHTS) as temporary:
        save_file(tensors, str(temporary), metadata={"format": "pt", "producer": "tzoo"})
    summary = rundir.read_summary(run_dir)
    payload = torch.load(run_dir / rundir.FINAL_CHECKPOINT, map_location="cpu",
                         weights_only=True)
    rundir.write_json(target / CONFIG, {
        "format": FORMAT_NAME,
        "format_version": 1,
        "model": loaded.model.config.to_dict(),
        "task_supplies_prefix": bool(payload["task_supplies_prefix"]),
        "task": (loaded.config.get("task") or {}),
        "run": {
            "experiment": summary.experiment if summary else None,
            "run_id": summary.run_id if summary else run_dir.name,
            "seed": summary.seed if summary else None,
            "metrics": summary.metrics if summary else {},
            "versions": summary.versions if summary else {},
        },
        "rebuild": REBUILD,
    })
    loaded.tokenizer.save(target / rundir.TOKENIZER)
    return target


@dataclass
class Exported:
    model: torch.nn.Module
    tokenizer: Tokenizer
    config: dict[str, Any]


def load_exported(folder: str | Path) -> Exported:
    """The model (eval mode) and tokenizer of a folder written by `export_run`."""
    from safetensors.torch import load_file

    folder = Path(folder)
    try:
        config = json.loads((folder / CONFIG).read_text())
    except (OSError, ValueError) as error:
        raise ConfigError(f"no readable {CONFIG} in '{folder}' ({error})") from None
    if config.get("format") != FORMAT_NAME:
        raise ConfigError(f"'{folder / CONFIG}' is not a tzoo export (format "
                          f"{config.get('format')!r})")
    model = build_model(ModelConfig.from_dict(config["model"]),
                        task_supplies_prefix=config["task_supplies_prefix"])
    model.load_state_dict(load_file(str(folder / WEIGHTS)))
    model.eval()
    return Exported(model, load_tokenizer(folder / rundir.TOKENIZER), config)
