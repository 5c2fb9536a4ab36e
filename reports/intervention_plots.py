"""The intervention figures of one variant, over its seeds: head Δloss heat maps, Δloss per
skipped sublayer, the logit-lens curve and the patching map.

Each function takes the per-seed results of one variant (same model shape) and returns the path
it wrote, or None when no seed has that result.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.colors import TwoSlopeNorm

from .interventions import Interventions
from .plots import _new, _save, color


def spread(values: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard deviation over seeds (std 0 for one seed)."""
    stacked = np.stack(values)
    std = stacked.std(axis=0, ddof=1) if len(values) > 1 else np.zeros_like(stacked[0])
    return stacked.mean(axis=0), std


def _cell_text(mean: float, std: float, seeds: int) -> str:
    return f"{mean:+.3f}" + (f"\n±{std:.3f}" if seeds > 1 else "")


def _annotated_map(fig, ax, mean: np.ndarray, std: np.ndarray, seeds: int, rows: list[str],
                   norm, cmap: str, label: str, title: str) -> None:
    image = ax.imshow(mean, cmap=cmap, norm=norm, aspect="auto")
    fig.colorbar(image, ax=ax, label=label, shrink=0.9)
    for (row, head), value in np.ndenumerate(mean):
        ax.text(head, row, _cell_text(value, std[row, head], seeds), ha="center",
                va="center", fontsize=7)
    ax.set_xticks(range(mean.shape[1]))
    ax.set_yticks(range(mean.shape[0]), rows)
    ax.set_xlabel("head")
    ax.set_ylabel("layer")
    ax.set_title(title, fontsize=9)


def head_map(results: Sequence[Interventions], path: Path) -> Path | None:
    """Δloss per layer × head under zero- and mean-ablation, side by side, on one colour scale
    centred on zero (red: the loss rises without the head)."""
    done = [r for r in results if r.zero is not None and r.mean is not None]
    if not done:
        return None
    panels = [("zero", spread([r.zero for r in done])), ("mean", spread([r.mean for r in done]))]
    largest = max(float(np.abs(mean).max()) for _, (mean, _) in panels) or 1e-6
    norm = TwoSlopeNorm(vcenter=0.0, vmin=-largest, vmax=largest)
    rows, heads = done[0].attention, done[0].heads
    fig = _new(2 * (0.75 * heads + 1.8), 0.6 * len(rows) + 1.4)
    for ax, (mode, (mean, std)) in zip(fig.subplots(1, 2), panels, strict=True):
        _annotated_map(fig, ax, mean, std, len(done), rows, norm, "RdBu_r", "Δ loss",
                       f"{mode}-ablation")
    seeds = f"mean ± std over {len(done)} seeds" if len(done) > 1 else "one seed"
    fig.suptitle(f"Δ validation loss with one head knocked out ({seeds})", fontsize=10)
    return _save(fig, path)


def block_bars(results: Sequence[Interventions], path: Path) -> Path | None:
    """Δloss when one block's sublayer is skipped: a group of bars per block (one per sublayer
    kind), error bars the std over seeds, dots the seeds."""
    done = [r for r in results if r.skipped]
    if not done:
        return None
    kinds = list(done[0].skipped)
    blocks = done[0].blocks
    width = 0.8 / len(kinds)
    fig = _new(max(4.5, 0.5 * len(blocks) * len(kinds) + 2.5), 3.6)
    ax = fig.subplots()
    x = np.arange(len(blocks))
    for k, kind in enumerate(kinds):
        values = np.stack([r.skipped[kind] for r in done])
        mean, std = spread(list(values))
        offset = x + (k - (len(kinds) - 1) / 2) * width
        present = ~np.isnan(mean)
        ax.bar(offset[present], mean[present], width,
               yerr=std[present] if len(done) > 1 else None, capsize=3, color=color(k),
               label=kind, alpha=0.85)
        for seed_values in values:
            ax.scatter(offset[present], seed_values[present], s=9, color="0.3", zorder=3)
    ax.axhline(0, color="0.4", lw=0.8)
    ax.set_xticks(x, blocks)
    ax.set_xlabel("block")
    ax.set_ylabel("Δ validation loss")
    ax.set_yscale("symlog", linthresh=0.01)
    ax.grid(alpha=0.3, axis="y")
    ax.legend(fontsize=8)
    ax.set_title("Δ loss with one sublayer skipped (bar: mean; dots: seeds)", fontsize=9)
    return _save(fig, path)


def lens_curve(results: Sequence[Interventions], path: Path) -> Path | None:
    """The logit-lens loss after the embedding and after each block: mean over seeds with a
    min–max band; the dashed line is the model's own loss."""
    done = [r for r in results if r.lens is not None]
    if not done:
        return None
    values = np.stack([r.lens for r in done])
    layers = np.arange(values.shape[1])
    fig = _new(5.2, 3.6)
    ax = fig.subplots()
    ax.plot(layers, values.mean(0), marker="o", color=color(0), label="logit lens")
    if len(done) > 1:
        ax.fill_between(layers, values.min(0), values.max(0), color=color(0), alpha=0.18, lw=0,
                        label="min–max over seeds")
    ax.axhline(float(np.mean([r.baseline for r in done])), color="0.3", ls="--", lw=1,
               label="the model's loss")
    ax.set_xticks(layers, done[0].lens_labels)
    ax.set_xlabel("read after (emb = embedding output; n = block n)")
    ax.set_ylabel("validation loss")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title("Logit lens: loss predicted from each depth", fontsize=9)
    return _save(fig, path)


def patch_map(results: Sequence[Interventions], path: Path) -> Path | None:
    """Share of the clean-vs-corrupted loss gap each head restores when patched from the clean
    run, per layer × head, on a fixed −1..1 scale."""
    done = [r.restored for r in results if r.restored is not None]
    if not done:
        return None
    first = next(r for r in results if r.restored is not None)
    mean, std = spread(done)
    fig = _new(0.75 * first.heads + 2.6, 0.6 * len(first.attention) + 1.4)
    ax = fig.subplots()
    _annotated_map(fig, ax, mean, std, len(done), first.attention,
                   TwoSlopeNorm(vcenter=0.0, vmin=-1.0, vmax=1.0), "PuOr_r",
                   "share of the gap restored", "Activation patching, clean → corrupted")
    return _save(fig, path)
