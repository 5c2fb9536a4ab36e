"""The intervention figures of one variant, over its seeds: two figures, so that a report with
many variants draws (and lays out) few of them.

- `heads`: layer × head maps of Δloss under zero- and mean-ablation and, below, the share of the
  patching gap each head restores; one column per seed.
- `depth`: Δloss per skipped sublayer (bars per block) beside the logit-lens curve.

Blocks and depths are the same thing in every seed, so they are drawn as a mean with the seeds'
spread; heads are not (training may put any job in any head), so each seed gets its own column.
Each function returns the path it wrote, or None when no seed has anything to draw.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import TwoSlopeNorm
from matplotlib.figure import Figure

from .interventions import Interventions
from .plots import DPI, _save, color


def _figure(width: float, height: float) -> Figure:
    """A figure on matplotlib's plain grid: constrained layout (the other report figures')
    measures every label again and doubled the time of these many-panel figures."""
    fig = Figure(figsize=(width, height), dpi=DPI)
    FigureCanvasAgg(fig)
    return fig


def spread(values: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard deviation over seeds (std 0 for one seed)."""
    stacked = np.stack(values)
    std = stacked.std(axis=0, ddof=1) if len(values) > 1 else np.zeros_like(stacked[0])
    return stacked.mean(axis=0), std


def _seed_name(result: Interventions, index: int) -> str:
    return f"seed {result.seed}" if result.seed is not None else f"run {index}"


def _map(ax, values: np.ndarray, norm, cmap: str, rows: list[str]):
    """One annotated layer × head map; returns the image for a colour bar."""
    image = ax.imshow(values, cmap=cmap, norm=norm, aspect="auto")
    for (row, head), value in np.ndenumerate(values):
        if not np.isfinite(value):
            ax.text(head, row, "n/a", ha="center", va="center", fontsize=7)
            continue
        dark = abs(float(norm(value)) - 0.5) > 0.3  # white text on the deep colours
        ax.text(head, row, f"{value:+.3f}", ha="center", va="center", fontsize=7,
                color="white" if dark else "black")
    ax.set_xticks(range(values.shape[1]))
    ax.set_yticks(range(values.shape[0]), rows)
    return image


def heads_figure(results: Sequence[Interventions], path: Path) -> Path | None:
    """Δloss per layer × head with that head knocked out (zero-, then mean-ablation; one colour
    scale centred on zero, red: the loss rises without the head) and, where patching ran, the
    share of the clean-vs-corrupted gap each head restores (a fixed −1..1 scale)."""
    knocked = [r for r in results if r.zero is not None and r.mean is not None]
    patched = [r for r in results if r.restored is not None]
    shown = knocked or patched
    if not shown:
        return None
    first = shown[0]
    grids: list[tuple[str, list[np.ndarray | None]]] = []
    if knocked:
        grids += [("zero-ablation Δ loss", [r.zero for r in shown]),
                  ("mean-ablation Δ loss", [r.mean for r in shown])]
    if patched:
        # a seed whose corrupted input did not raise the loss has no share to show: blank map
        blank = np.full((len(first.attention), first.heads), np.nan)
        grids.append(("patching: share restored",
                      [blank if r.restored is None else r.restored for r in shown]))
    width = len(shown) * (0.7 * first.heads + 1.0) + 2.2
    height = len(grids) * (0.5 * len(first.attention) + 0.9) + 1.0
    fig = _figure(width, height)
    fig.subplots_adjust(left=1.0 / width, right=1 - 0.4 / width, bottom=0.7 / height,
                        top=1 - 0.7 / height, hspace=0.45, wspace=0.15)
    axes = np.atleast_2d(fig.subplots(len(grids), len(shown), squeeze=False, sharex=True,
                                      sharey=True))
    largest = max((float(np.abs(np.stack([r.zero, r.mean])).max()) for r in knocked),
                  default=0.0) or 1e-6
    loss_norm = TwoSlopeNorm(vcenter=0.0, vmin=-largest, vmax=largest)
    share_norm = TwoSlopeNorm(vcenter=0.0, vmin=-1.0, vmax=1.0)
    images = {}
    for row, (title, maps) in enumerate(grids):
        patching = title.startswith("patching")
        norm, cmap = (share_norm, "PuOr_r") if patching else (loss_norm, "RdBu_r")
        for column, (ax, values) in enumerate(zip(axes[row], maps, strict=True)):
            images[patching] = _map(ax, values, norm, cmap, first.attention)
            ax.set_title(f"{title}, {_seed_name(shown[column], column)}", fontsize=8)
            ax.set_xlabel("head")
            ax.set_ylabel("layer")
            ax.label_outer()
    if knocked:
        fig.colorbar(images[False], ax=axes[:2], label="Δ loss", shrink=0.9)
    if patched:
        fig.colorbar(images[True], ax=axes[-1:], label="share restored", shrink=0.9)
    fig.suptitle("One head at a time: knocked out (Δ validation loss), or patched from the "
                 "clean run", fontsize=10)
    return _save(fig, path)


def depth_figure(results: Sequence[Interventions], path: Path) -> Path | None:
    """Left: Δloss when one block's sublayer is skipped, a group of bars per block (error bars
    the std over seeds, dots the seeds). Right: the logit-lens loss after the embedding and after
    each block, mean over seeds with a min–max band; dashed, the model's own loss."""
    skipped = [r for r in results if r.skipped]
    lensed = [r for r in results if r.lens is not None]
    panels = [name for name, done in (("blocks", skipped), ("lens", lensed)) if done]
    if not panels:
        return None
    fig = _figure(5.0 * len(panels), 3.8)
    fig.subplots_adjust(left=0.6 / (5.0 * len(panels)), right=0.97, bottom=0.15, top=0.9,
                        wspace=0.25)
    axes = dict(zip(panels, np.atleast_1d(fig.subplots(1, len(panels))), strict=True))
    if skipped:
        _block_bars(axes["blocks"], skipped)
    if lensed:
        _lens_curve(axes["lens"], lensed)
    return _save(fig, path)


def _block_bars(ax, results: Sequence[Interventions]) -> None:
    kinds = list(results[0].skipped)
    blocks = results[0].blocks
    width = 0.8 / len(kinds)
    x = np.arange(len(blocks))
    for k, kind in enumerate(kinds):
        values = np.stack([r.skipped[kind] for r in results])
        mean, std = spread(list(values))
        offset = x + (k - (len(kinds) - 1) / 2) * width
        present = ~np.isnan(mean)
        ax.bar(offset[present], mean[present], width,
               yerr=std[present] if len(results) > 1 else None, capsize=3, color=color(k),
               label=kind, alpha=0.85)
        for seed_values in values:
            ax.scatter(offset[present], seed_values[present], s=14, color="0.15", zorder=4)
    ax.axhline(0, color="0.4", lw=0.8)
    ax.set_xticks(x, blocks)
    ax.set_xlabel("block")
    ax.set_ylabel("Δ validation loss")
    ax.grid(alpha=0.3, axis="y")
    ax.legend(fontsize=8)
    ax.set_title("One sublayer skipped (bar: mean; dots: seeds)", fontsize=9)


def _lens_curve(ax, results: Sequence[Interventions]) -> None:
    values = np.stack([r.lens for r in results])
    layers = np.arange(values.shape[1])
    ax.plot(layers, values.mean(0), marker="o", color=color(0), label="logit lens")
    if len(results) > 1:
        ax.fill_between(layers, values.min(0), values.max(0), color=color(0), alpha=0.18, lw=0,
                        label="min–max over seeds")
    ax.axhline(float(np.mean([r.baseline for r in results])), color="0.3", ls="--", lw=1,
               label="the model's loss")
    ax.set_xticks(layers, results[0].lens_labels)
    ax.set_xlabel("read after (emb = the embedding; n = block n)")
    ax.set_ylabel("validation loss")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title("Logit lens: the loss predicted from each depth", fontsize=9)
