"""What each part of a trained model does: change it inside the model and watch the loss.

Four interventions, each measured on the run's own validation batches (the loss `val/loss`
reports) through the hooks of `tzoo.components.interventions`:

- **head knockout**: one attention head's output is replaced, before the output projection, by
  zero (zero-ablation) or by its mean over the validation tokens (mean-ablation, which removes
  what the head says about *this* input but keeps its constant contribution); Δloss per
  layer × head.
- **block knockout**: one block's attention (or cross-attention, or feed-forward) sublayer is
  skipped, so the stream passes that sublayer unchanged; Δloss per block.
- **logit lens** (nostalgebraist 2020): the prediction is read from the stream after each block
  through the final norm and the output layer; the loss per depth shows where the prediction
  forms. At the last block it is the model's own loss.
- **activation patching** (Meng et al. 2022; Wang et al. 2022): a causal LM reads each
  validation window with its first half replaced by another window's (corrupted), and one head's
  output on the second half is copied in from the clean run; the share of the second half's
  loss gap it restores says how much of the first half's information that head carries over.

On a run whose data repeats itself (`eval.repeat_loss`), the head and block knockouts are also
measured on the repeated tokens and on the fresh ones apart (the split of `val/loss_repeat` and
`val/loss_fresh`): a copying head is one whose knockout raises the first to the level of the
second, which no copy can lower.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from tzoo.components.interventions import (
    RunningMean,
    ablate,
    attention_points,
    intervene,
    logit_lens,
    patch,
    points,
    predicting_stack,
)

WHAT = ("heads", "blocks", "lens", "patch")
SUBLAYERS = {"attn": "attention", "cross_attn": "cross-attention", "ffn": "feed-forward"}
Evaluate = Callable[[], float]
#: (loss on the repeated tokens, loss on the fresh ones) in one pass over the batches
EvaluateHalves = Callable[[], tuple[float, float]]


@dataclass
class Interventions:
    """The results of the interventions on one model (one seed)."""

    baseline: float
    #: the run's seed (figures label each seed's head map with it)
    seed: int | None = None
    #: one label per attention layer (rows of the head maps): '0', 'enc 0', 'dec 1 cross'
    attention: list[str] = field(default_factory=list)
    heads: int = 0
    #: Δloss (rows: attention layers, columns: heads) under zero- and mean-ablation
    zero: np.ndarray | None = None
    mean: np.ndarray | None = None
    #: block labels and, per sublayer kind, Δloss when that block's sublayer is skipped
    #: (NaN where the block has no such sublayer)
    blocks: list[str] = field(default_factory=list)
    skipped: dict[str, np.ndarray] = field(default_factory=dict)
    #: logit lens: 'emb', '0', '1', ... and the loss read from each
    lens_labels: list[str] = field(default_factory=list)
    lens: np.ndarray | None = None
    #: patching: second-half loss of the clean and corrupted inputs, and of the corrupted one
    #: with each head patched from the clean run (rows: attention layers, columns: heads)
    patch_clean: float | None = None
    patch_corrupt: float | None = None
    patched: np.ndarray | None = None
    #: on a run whose data repeats itself: the (repeated, fresh) losses untouched, then their
    #: change (last axis: repeated, fresh) with each head knocked out (layers × heads × 2) and
    #: with each block's sublayer skipped (blocks × 2 per sublayer kind)
    halves: np.ndarray | None = None
    halves_zero: np.ndarray | None = None
    halves_mean: np.ndarray | None = None
    halves_skipped: dict[str, np.ndarray] = field(default_factory=dict)
    #: why an intervention that was asked for could not run on this model
    not_applicable: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0

    def as_dict(self) -> dict:
        """Plain data (lists for arrays), for JSON."""
        plain = {}
        for key, value in vars(self).items():
            if isinstance(value, dict):
                value = {k: _listed(v) for k, v in value.items()}
            plain[key] = _listed(value)
        plain["restored"] = _listed(self.restored)
        return plain

    @property
    def restored(self) -> np.ndarray | None:
        """Share of the clean-vs-corrupted gap each patched head restores (1 = all of it)."""
        if self.patched is None or self.patch_clean is None or self.patch_corrupt is None:
            return None
        gap = self.patch_corrupt - self.patch_clean
        return (self.patch_corrupt - self.patched) / gap if gap > 0 else None


def _listed(value):
    """An array as nested lists with None for NaN (JSON has no NaN); anything else as is."""
    if not isinstance(value, np.ndarray):
        return value
    return np.where(np.isnan(value), None, value).tolist()


def _label(name: str) -> str:
    """'blocks.1.attn.heads' -> '1'; 'decoder.blocks.0.cross_attn.heads' -> 'dec 0 cross';
    'encoder.blocks.2' -> 'enc 2'."""
    match = re.match(r"(?:(encoder|decoder)\.)?blocks\.(\d+)(?:\.(\w+))?", name)
    if match is None:
        return name
    stack, index, kind = match.groups()
    label = f"{stack[:3]} {index}" if stack else index
    return f"{label} cross" if kind == "cross_attn" else label


def _evaluate_with(model: nn.Module, evaluate: Evaluate | EvaluateHalves,
                   edits: dict) -> np.ndarray:
    with intervene(model, edits):
        return np.asarray(evaluate(), dtype=float)


def head_knockout(model: nn.Module, evaluate: Evaluate | EvaluateHalves,
                  baseline: float | np.ndarray,
                  modes: Iterable[str] = ("zero", "mean")) -> dict[str, np.ndarray]:
    """Δloss per attention layer × head for each ablation mode (and per part of the tokens,
    on a last axis, when `evaluate` gives one loss per part)."""
    names = attention_points(model)
    heads = points(model)[names[0]].heads
    means: dict[str, Tensor] = {}
    if "mean" in modes:
        observers = {name: RunningMean() for name in names}
        _evaluate_with(model, evaluate, observers)
        means = {name: observer.mean for name, observer in observers.items()}
    results = {}
    for mode in modes:
        deltas = np.zeros((len(names), heads, *np.shape(baseline)))
        for row, name in enumerate(names):
            for head in range(heads):
                edit = ablate(heads=[head], value=means.get(name) if mode == "mean" else None)
                deltas[row, head] = _evaluate_with(model, evaluate, {name: edit}) - baseline
        results[mode] = deltas
    return results


def block_knockout(model: nn.Module, evaluate: Evaluate | EvaluateHalves,
                   baseline: float | np.ndarray) -> tuple[list[str], dict[str, np.ndarray]]:
    """Block labels and, per sublayer kind, Δloss when that sublayer of each block is skipped
    (per part of the tokens, on a last axis, when `evaluate` gives one loss per part)."""
    known = points(model)
    blocks = [name.rsplit(".", 1)[0] for name in known if name.endswith(".resid_pre")]
    found: dict[str, np.ndarray] = {}
    for key, title in SUBLAYERS.items():
        if not any(f"{block}.{key}.sublayer" in known for block in blocks):
            continue
        deltas = np.full((len(blocks), *np.shape(baseline)), np.nan)
        for i, block in enumerate(blocks):
            name = f"{block}.{key}.sublayer"
            if name in known:
                deltas[i] = _evaluate_with(model, evaluate, {name: ablate()}) - baseline
        found[title] = deltas
    return [_label(block) for block in blocks], found


def lens_losses(model: nn.Module, evaluate: Evaluate) -> tuple[list[str], np.ndarray]:
    """The loss read through the final norm and output layer after the embedding and after each
    block of the predicting stack."""
    _, stack = predicting_stack(model)
    layers = range(-1, len(stack.blocks))
    losses = np.array([_evaluate_with(model, evaluate, logit_lens(model, layer))
                       for layer in layers])
    return ["emb", *[str(layer) for layer in layers if layer >= 0]], losses


def _second_half_loss(model: nn.Module, inputs: Tensor, targets: Tensor, half: int) -> Tensor:
    """Summed next-token loss over positions half.. (whose inputs the corruption leaves alone)."""
    logits = model(inputs)[:, half:]
    return F.cross_entropy(logits.flatten(0, 1).float(), targets[:, half:].flatten(),
                           reduction="sum")


@torch.no_grad()
def activation_patching(model: nn.Module, windows: Tensor,
                        batch_size: int = 16) -> tuple[float, float, np.ndarray]:
    """(clean loss, corrupted loss, patched loss per attention layer × head) on the second half
    of each window, the corrupted input having its first half from the window half the set
    away (validation windows are consecutive text: a neighbour would share its document).

    A head is patched at the second half's positions only: there its output differs between
    the two runs only by what it brought over from the first half, so the loss it restores is
    information it carried across (patching every position would also credit a head that merely
    rewrites the corrupted tokens where they stand, for later heads to fetch)."""
    names = attention_points(model)
    heads = points(model)[names[0]].heads
    inputs, targets = windows[:, :-1], windows[:, 1:]
    half = inputs.shape[1] // 2
    corrupted = inputs.clone()
    corrupted[:, :half] = inputs.roll(max(1, len(inputs) // 2), dims=0)[:, :half]
    clean_sum = corrupt_sum = 0.0
    patched_sum = np.zeros((len(names), heads))
    for start in range(0, len(inputs), batch_size):
        part = slice(start, start + batch_size)
        with intervene(model, record=names) as clean:
            clean_sum += float(_second_half_loss(model, inputs[part], targets[part], half))
        corrupt_sum += float(_second_half_loss(model, corrupted[part], targets[part], half))
        for row, name in enumerate(names):
            for head in range(heads):
                edit = patch(clean[name][0], heads=[head], positions=slice(half, None))
                with intervene(model, {name: edit}):
                    patched_sum[row, head] += float(
                        _second_half_loss(model, corrupted[part], targets[part], half))
    counted = targets[:, half:].numel()
    return clean_sum / counted, corrupt_sum / counted, patched_sum / counted


def run_interventions(model: nn.Module, evaluate: Evaluate, *,
                      windows: Tensor | None = None, what: Iterable[str] = WHAT,
                      seed: int | None = None,
                      halves: EvaluateHalves | None = None) -> Interventions:
    """The interventions named in `what` on `model` (in eval mode), each scored by `evaluate`,
    the validation loss under whatever hooks are active. `windows`: a causal LM's validation
    token windows, for patching (None: patching does not apply). `halves`: the losses on the
    repeated and the fresh tokens, for a run whose data repeats itself (None: no split)."""
    started = time.perf_counter()
    what = set(what)
    model.eval()
    with torch.no_grad():
        baseline = evaluate()
    names = attention_points(model)
    result = Interventions(baseline=baseline, seed=seed, attention=[_label(n) for n in names],
                           heads=points(model)[names[0]].heads)
    with torch.no_grad():
        if "heads" in what:
            deltas = head_knockout(model, evaluate, baseline)
            result.zero, result.mean = deltas["zero"], deltas["mean"]
        if "blocks" in what:
            result.blocks, result.skipped = block_knockout(model, evaluate, baseline)
        if "lens" in what:
            result.lens_labels, result.lens = lens_losses(model, evaluate)
        if halves is not None and what & {"heads", "blocks"}:
            result.halves = untouched = np.asarray(halves(), dtype=float)
            if "heads" in what:
                deltas = head_knockout(model, halves, untouched)
                result.halves_zero, result.halves_mean = deltas["zero"], deltas["mean"]
            if "blocks" in what:
                _, result.halves_skipped = block_knockout(model, halves, untouched)
    if "patch" in what:
        if windows is None:
            result.not_applicable["patch"] = (
                "does not apply: patching compares next-token losses of a causal language "
                "model on two inputs")
        elif len(windows) < 2 or windows.shape[1] < 5:
            result.not_applicable["patch"] = "does not apply: needs two windows of 4+ tokens"
        else:
            clean, corrupt, patched = activation_patching(model, windows)
            result.patch_clean, result.patch_corrupt, result.patched = clean, corrupt, patched
    result.seconds = time.perf_counter() - started
    return result
