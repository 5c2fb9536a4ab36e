"""Hand-written run directories and a tiny model for the report tests.

The run directory contract is written here by hand (not by the trainer) so that the report
tests pin the contract itself and know every expected number.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Any

import torch
import yaml
from torch import nn

# val/loss per (variant, seed); the other metrics are derived from it so every value is known.
BASE = "base"
ROTARY = "model.position=rotary"
VAL_LOSS = {
    (BASE, 0): 2.10, (BASE, 1): 2.30,
    (ROTARY, 0): 1.90, (ROTARY, 1): 1.95,
}
BLEU = {(BASE, 0): 20.0, (BASE, 1): 22.0, (ROTARY, 0): 25.0, (ROTARY, 1): 26.5}
DIVERGED_REASON = "loss became nan at step 412"
FAILED_REASON = "CUDA out of memory while allocating 2.00 GiB"


def variant_dict(name: str) -> dict[str, Any]:
    """'a=x, b=y' -> {'a': 'x', 'b': 'y'}; the base variant has none."""
    if name == BASE:
        return {}
    return dict(item.split("=") for item in name.split(", "))


def write_metrics_csv(path: Path, final_val: float, steps: int = 100, *,
                      diverge_at: int | None = None, layers: int = 2) -> None:
    """Lightning CSVLogger style: sparse train rows every 10 steps, val rows every 50."""
    grad_cols = [f"grad_norm/layer_{i}" for i in range(layers)]
    columns = ["epoch", "step", "train/loss", "lr", *grad_cols, "val/loss", "val/ppl"]
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        for step in range(0, steps + 1, 10):
            loss = final_val + 2.0 * math.exp(-step / 30)
            if diverge_at is not None and step >= diverge_at:
                loss = float("nan")
            row: dict[str, Any] = {"epoch": 0, "step": step, "train/loss": loss, "lr": 1e-3}
            for i, col in enumerate(grad_cols):
                row[col] = (1.0 + i) * math.exp(-step / 80)
            writer.writerow(row)
            if step % 50 == 0 and step > 0:
                val = final_val + 2.0 * math.exp(-step / 30) + 0.05
                writer.writerow({"epoch": 0, "step": step, "val/loss": val,
                                 "val/ppl": math.exp(val)})


def write_run(root: Path, experiment: str, run_id: str, *, variant: str, seed: int,
              status: str = "completed", metrics: dict[str, float | None] | None = None,
              error: str | None = None, fingerprint: str = "fp-tinyshakespeare-1a2b",
              params: int = 120_000, tokens_per_s: float = 5_000.0, peak_mem_mb: float = 300.0,
              wall_s: float = 95.0, steps: int = 100, summary: bool = True,
              checkpoint: bool = False) -> Path:
    """One run directory with config.yaml, metrics.csv and (unless summary=False)
    summary.json."""
    path = root / experiment / run_id
    path.mkdir(parents=True)
    config = {
        "experiment": experiment,
        "task": {"name": "lm"},
        "data": {"corpus": "tinyshakespeare", "seq_len": 64},
        "model": {"d_model": 32, "layers": 2, "heads": 2,
                  "position": variant_dict(variant).get("model.position", "learned")},
        "train": {"steps": 100},  # configured; `steps` below is how far the run got
        "eval": {"context_multipliers": [1, 2, 4]},
        "seed": seed, "run_id": run_id,  # as the runner records them
    }
    (path / "config.yaml").write_text(yaml.safe_dump(config))
    final = (metrics or {}).get("val/loss") or 3.0
    write_metrics_csv(path / "metrics.csv", float(final), steps,
                      diverge_at=steps // 2 if status == "diverged" else None)
    if checkpoint:
        (path / "checkpoints").mkdir()
        (path / "checkpoints" / "final.pt").write_bytes(b"stand-in")
    if summary:
        data = {
            "experiment": experiment, "run_id": run_id, "variant": variant_dict(variant),
            "variant_name": variant, "seed": seed, "status": status, "error": error,
            "metrics": metrics or {}, "params": params, "tokens_per_s": tokens_per_s,
            "peak_mem_mb": peak_mem_mb, "wall_s": wall_s, "steps": steps,
            "data_fingerprint": fingerprint,
            "versions": {"python": "3.11.9", "torch": "2.13.0", "lightning": "2.6.0",
                         "tzoo": "0.1.0", "git": "abc1234"},
            "base_variant": variant == BASE,
        }
        (path / "summary.json").write_text(json.dumps(data))
    return path


def completed_metrics(variant: str, seed: int) -> dict[str, float | None]:
    loss = VAL_LOSS[(variant, seed)]
    return {
        "val/loss": loss,
        "val/ppl": math.exp(loss),
        "val/loss@1x": loss,
        "val/loss@2x": loss + (0.1 if variant == ROTARY else 0.8),
        # Learned positions cannot go past their table: not applicable.
        "val/loss@4x": loss + 0.3 if variant == ROTARY else None,
        "test/bleu": BLEU[(variant, seed)],
    }


def make_experiment(root: Path, experiment: str = "positions", *,
                    checkpoint: bool = False) -> Path:
    """2 variants x 2 seeds completed, plus one diverged, one failed and one still running."""
    for variant in (BASE, ROTARY):
        for seed in (0, 1):
            tag = "base" if variant == BASE else "rotary"
            write_run(root, experiment, f"{tag}-s{seed}", variant=variant, seed=seed,
                      metrics=completed_metrics(variant, seed), checkpoint=checkpoint)
    write_run(root, experiment, "rotary-s2", variant=ROTARY, seed=2, status="diverged",
              error=DIVERGED_REASON, metrics={"val/loss": float("nan")}, steps=412)
    write_run(root, experiment, "alibi-s0", variant="model.position=alibi", seed=0,
              status="failed", error=FAILED_REASON, metrics={}, steps=3)
    write_run(root, experiment, "base-s3", variant=BASE, seed=3, summary=False)
    return root / experiment


class TinyAttention(nn.Module):
    """Causal multi-head self-attention that hands back its probabilities."""

    def __init__(self, d_model: int, heads: int):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.out = nn.Linear(d_model, d_model)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        b, n, d = x.shape
        q, k, v = self.qkv(x).view(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        scores = q @ k.transpose(-1, -2) / math.sqrt(d // self.heads)
        causal = torch.ones(n, n, dtype=torch.bool).triu(1)
        probs = scores.masked_fill(causal, float("-inf")).softmax(-1)
        y = (probs @ v).transpose(1, 2).reshape(b, n, d)
        return x + self.out(y), probs


class LearnedPosition(nn.Module):
    def __init__(self, max_len: int, d_model: int):
        super().__init__()
        self.max_len = max_len
        self.table = nn.Embedding(max_len, d_model)


class TinyLM(nn.Module):
    """A stand-in with the probe API of tzoo.components.model (attention, hidden, tables)."""

    def __init__(self, vocab: int = 40, d_model: int = 16, layers: int = 2, heads: int = 2,
                 max_len: int = 64):
        super().__init__()
        torch.manual_seed(0)
        self.embedding = nn.Embedding(vocab, d_model)
        self.position = LearnedPosition(max_len, d_model)
        self.layers = nn.ModuleList(TinyAttention(d_model, heads) for _ in range(layers))
        self.head = nn.Linear(d_model, vocab)

    @property
    def max_positions(self) -> int:
        return self.position.max_len

    def forward(self, tokens: torch.Tensor, *, return_attention: bool = False,
                return_hidden: bool = False):
        x = self.embedding(tokens) + self.position.table(torch.arange(tokens.shape[1]))
        hidden, maps = [x], []
        for layer in self.layers:
            x, probs = layer(x)
            hidden.append(x)
            maps.append(probs)
        logits = self.head(x)
        if return_attention:
            return logits, maps
        if return_hidden:
            return logits, hidden
        return logits


class CharTokenizer:
    """Lowercase letters, digits and a few symbols; enough for the probes' sample text."""

    alphabet = "abcdefghijklmnopqrstuvwxyz0123456789 .+="

    @property
    def vocab_size(self) -> int:
        return len(self.alphabet)

    def encode(self, text: str) -> list[int]:
        return [self.alphabet.index(c) for c in text if c in self.alphabet]

    def decode(self, ids: list[int]) -> str:
        return "".join(self.alphabet[i] for i in ids)


class Loaded:
    """What tzoo.recipes.checkpoints.load_run returns: .model, .tokenizer, .config."""

    def __init__(self) -> None:
        self.model = TinyLM(vocab=len(CharTokenizer.alphabet)).eval()
        self.tokenizer = CharTokenizer()
        self.config: dict[str, Any] = {}


def fake_load_run(run_dir: Path) -> Loaded:
    return Loaded()
