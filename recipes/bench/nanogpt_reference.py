"""A from-scratch nanoGPT-style trainer for Tiny Shakespeare: the yardstick for issue 3's target.

    python -m tzoo.recipes.bench.nanogpt_reference --seeds 0,1,2 --json /tmp/ref.json

The suite's `recipes/nanogpt-shakespeare-cpu.yaml` reaches 1.90 nats/char where nanoGPT's README
quotes 1.88. This script answers "is that gap the suite's, or the number's?" by training the same
configuration with none of the suite: no registry, no Lightning, no tokenizer classes, no batch
module. Everything nanoGPT's `train.py` does for that command is written out here (by hand, not
copied): the 65-character vocabulary, the 90/10 split, random windows drawn from the global torch
generator, a bias-free pre-LN GPT with tied output and depth-scaled projection init, AdamW
(0.9, 0.99) with weight decay on 2-D tensors only, lr 1e-3 with 100 warm-up steps and cosine decay
to 1e-4 at step 2,000, gradient clipping at 1.0.

Each seed's final model is evaluated three ways:
  * `nanogpt_20`: nanoGPT's own estimate, the mean loss of 20 random batches of 12 windows
    (`--eval_iters=20`), drawn from the generator as nanoGPT draws them;
  * `suite_50`: the suite's default, the first 50 × 12 contiguous windows of the validation split;
  * `full`: every contiguous window of the validation split (each character predicted once).
To show how much the quoted number moves with the draw alone, `nanogpt_20_spread` repeats the
20-batch estimate with 200 other draws on the same final model (min, median, max).
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def shakespeare() -> Path:
    """The corpus the suite's recipes name (base-lm.yaml: dataset:tinyshakespeare), from the
    dataset cache (downloaded and verified there on first use): the one piece of the suite
    this reference borrows, so that both read the very same bytes."""
    from tzoo.recipes.store import CATALOGUE, ensure

    entry = CATALOGUE["tinyshakespeare"]
    return ensure(entry) / entry.corpus


class Block(nn.Module):
    """Pre-LN transformer block: x + attn(ln(x)), then x + mlp(ln(x)); biases optional."""

    def __init__(self, d: int, heads: int, bias: bool):
        super().__init__()
        self.heads = heads
        self.ln_attn = nn.LayerNorm(d, bias=bias)
        self.qkv = nn.Linear(d, 3 * d, bias=bias)
        self.attn_out = nn.Linear(d, d, bias=bias)
        self.ln_mlp = nn.LayerNorm(d, bias=bias)
        self.mlp_in = nn.Linear(d, 4 * d, bias=bias)
        self.mlp_out = nn.Linear(4 * d, d, bias=bias)

    def forward(self, x: Tensor) -> Tensor:
        batch, length, d = x.shape
        q, k, v = (t.view(batch, length, self.heads, d // self.heads).transpose(1, 2)
                   for t in self.qkv(self.ln_attn(x)).split(d, dim=2))
        mixed = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.attn_out(mixed.transpose(1, 2).reshape(batch, length, d))
        return x + self.mlp_out(F.gelu(self.mlp_in(self.ln_mlp(x))))


class TinyGPT(nn.Module):
    """Token + learned position embeddings, pre-LN blocks, final LayerNorm, tied output."""

    def __init__(self, vocab: int, context: int, d: int, layers: int, heads: int,
                 bias: bool = False):
        super().__init__()
        self.tokens = nn.Embedding(vocab, d)
        self.positions = nn.Embedding(context, d)
        self.blocks = nn.ModuleList(Block(d, heads, bias) for _ in range(layers))
        self.ln_final = nn.LayerNorm(d, bias=bias)
        # GPT-2 initialisation as nanoGPT applies it: N(0, 0.02) for every matrix, and
        # N(0, 0.02 / sqrt(2·layers)) for the projections that write into the residual stream.
        for name, p in self.named_parameters():
            if p.dim() == 2:
                std = 0.02 / math.sqrt(2 * layers) if name.endswith("_out.weight") else 0.02
                nn.init.normal_(p, 0.0, std)
            elif name.endswith(".bias"):
                nn.init.zeros_(p)

    def forward(self, idx: Tensor) -> Tensor:
        x = self.tokens(idx) + self.positions(torch.arange(idx.shape[1]))
        for block in self.blocks:
            x = block(x)
        return F.linear(self.ln_final(x), self.tokens.weight)


def lr_at(step: int, *, peak: float, floor: float, warmup: int, decay_steps: int) -> float:
    """nanoGPT's schedule: linear warm-up to `peak`, cosine to `floor` at `decay_steps`."""
    if step < warmup:
        return peak * (step + 1) / (warmup + 1)
    if step > decay_steps:
        return floor
    progress = (step - warmup) / (decay_steps - warmup)
    return floor + 0.5 * (1.0 + math.cos(math.pi * progress)) * (peak - floor)


def random_batch(data: Tensor, context: int, batch: int) -> tuple[Tensor, Tensor]:
    """nanoGPT's get_batch: `batch` window starts uniform over the split, global generator."""
    starts = torch.randint(len(data) - context, (batch,))
    windows = data[starts[:, None] + torch.arange(context + 1)]
    return windows[:, :-1], windows[:, 1:]


@torch.no_grad()
def mean_random_loss(model: nn.Module, data: Tensor, context: int, batch: int, n: int) -> float:
    losses = []
    for _ in range(n):
        x, y = random_batch(data, context, batch)
        losses.append(F.cross_entropy(model(x).flatten(0, 1), y.flatten()).item())
    return sum(losses) / n


@torch.no_grad()
def contiguous_loss(model: nn.Module, data: Tensor, context: int, batch: int,
                    max_windows: int | None = None) -> float:
    """Mean loss over contiguous windows (window i predicts characters i·T+1 .. (i+1)·T)."""
    n = (len(data) - 1) // context
    n = n if max_windows is None else min(n, max_windows)
    total, count = 0.0, 0
    for first in range(0, n, batch):
        idx = torch.arange(first, min(first + batch, n))
        windows = data[idx[:, None] * context + torch.arange(context + 1)]
        logits = model(windows[:, :-1])
        total += F.cross_entropy(logits.flatten(0, 1), windows[:, 1:].flatten(),
                                 reduction="sum").item()
        count += windows[:, 1:].numel()
    return total / count


def train_one(seed: int, text: str, args: argparse.Namespace) -> dict:
    chars = sorted(set(text))
    index = {c: i for i, c in enumerate(chars)}
    data = torch.tensor([index[c] for c in text], dtype=torch.long)
    cut = int(0.9 * len(data))
    train, val = data[:cut], data[cut:]

    torch.manual_seed(seed)
    model = TinyGPT(len(chars), args.context, args.d_model, args.layers, args.heads, args.bias)
    matrices = [p for p in model.parameters() if p.dim() >= 2]
    others = [p for p in model.parameters() if p.dim() < 2]
    optimizer = torch.optim.AdamW([{"params": matrices, "weight_decay": 0.1},
                                   {"params": others, "weight_decay": 0.0}],
                                  lr=args.lr, betas=(0.9, 0.99))
    started = time.perf_counter()
    for step in range(args.steps):
        for group in optimizer.param_groups:
            group["lr"] = lr_at(step, peak=args.lr, floor=args.min_lr, warmup=args.warmup,
                                decay_steps=args.steps)
        x, y = random_batch(train, args.context, args.batch)
        loss = F.cross_entropy(model(x).flatten(0, 1), y.flatten())
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if step % 500 == 0:
            print(f"  seed {seed} step {step}: train loss {loss.item():.4f}", flush=True)
    wall = time.perf_counter() - started
    model.eval()
    result = {
        "seed": seed, "train_wall_s": round(wall, 1),
        "nanogpt_20": mean_random_loss(model, val, args.context, args.batch, 20),
        "suite_50": contiguous_loss(model, val, args.context, args.batch, 50 * args.batch),
        "full": contiguous_loss(model, val, args.context, args.batch),
    }
    draws = sorted(mean_random_loss(model, val, args.context, args.batch, 20)
                   for _ in range(args.draws))
    result["nanogpt_20_spread"] = {"min": draws[0], "median": statistics.median(draws),
                                   "max": draws[-1], "draws": len(draws)}
    print(f"seed {seed}: nanoGPT-style 20 batches {result['nanogpt_20']:.4f}, "
          f"suite 50 batches {result['suite_50']:.4f}, full split {result['full']:.4f} "
          f"({wall:.0f} s)", flush=True)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tzoo.recipes.bench.nanogpt_reference",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=None,
                        help="Tiny Shakespeare's input.txt (default: the dataset cache's copy, "
                             "fetched on first use)")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--context", type=int, default=64)
    parser.add_argument("--batch", type=int, default=12)
    parser.add_argument("--d-model", type=int, default=128)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--bias", action="store_true",
                        help="biases in linear layers and LayerNorm (nanoGPT's model default; "
                             "its train.py turns them off)")
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--min-lr", type=float, default=1e-4)
    parser.add_argument("--warmup", type=int, default=100)
    parser.add_argument("--draws", type=int, default=200,
                        help="extra 20-batch estimates per model, for the spread")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    if args.data is None:
        from tzoo.components.errors import ConfigError

        try:
            args.data = shakespeare()
        except ConfigError as error:  # offline and not cached, say: one line, exit 2
            parser.error(str(error))
    if not args.data.is_file():
        parser.error(f"no corpus at {args.data}; pass --data PATH to Tiny Shakespeare's input.txt")
    torch.set_num_threads(args.threads)
    text = args.data.read_text(encoding="utf-8")
    results = [train_one(int(s), text, args) for s in args.seeds.split(",")]
    summary = {key: {"mean": statistics.mean(r[key] for r in results),
                     "sd": statistics.stdev(r[key] for r in results) if len(results) > 1 else 0.0}
               for key in ("nanogpt_20", "suite_50", "full")}
    for key, s in summary.items():
        print(f"{key:>11}: {s['mean']:.4f} ± {s['sd']:.4f} over {len(results)} seeds")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"config": {k: str(v) for k, v in vars(args).items()},
                                         "runs": results, "summary": summary}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
