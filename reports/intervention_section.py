"""The report's intervention section: per variant, every seed's final checkpoint knocked out,
skipped, lensed and patched on its own validation batches (`interventions.py`), drawn over seeds.

Like the probes, a run that cannot be loaded or evaluated costs its own line, never the report;
and the section is left out with `--no-probes`.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from . import intervention_plots as figures
from .document import Block, Heading, Image, Paragraph
from .interventions import WHAT, Interventions, run_interventions
from .probe_runner import Loader, default_loader, safe_name
from .runs import Run, group_by_variant

#: validation batches per evaluation in a report (the CLI's `tzoo probe` uses the run's own
#: `eval.batches`): each intervention is one more pass over them, so this bounds the cost
BATCHES = 2


def intervene_run(run: Run, loader: Loader | None = None, *, what: Iterable[str] = WHAT,
                  max_batches: int | None = BATCHES) -> Interventions | str:
    """The interventions on `run`'s final checkpoint, or why there are none."""
    if run.checkpoint is None:
        return "the run has no checkpoint"
    try:
        load = loader or default_loader()
        from tzoo.recipes.validation import Validation, run_threads
    except ImportError as exc:
        return f"cannot load checkpoints ({exc})"
    try:
        loaded = load(run.path)
        from tzoo.components.interventions import points

        points(loaded.model)  # refuses anything but a zoo model, before building its data
        config = getattr(loaded, "config", None) or run.config
        with run_threads(config):
            validation = Validation(config, loaded.model, max_batches=max_batches)
            return run_interventions(loaded.model, validation.loss,
                                     windows=validation.causal_windows(), what=what)
    except Exception as exc:  # one run's failure costs its line, not the report
        return f"{type(exc).__name__}: {exc}"


def _headline(results: Sequence[Interventions]) -> list[str]:
    """One sentence per intervention with the numbers that matter, averaged over seeds."""
    first = results[0]
    seeds = len(results)
    lines = []
    baseline = np.mean([r.baseline for r in results])
    if first.zero is not None:
        zero = np.mean([r.zero for r in results], axis=0)
        mean = np.mean([r.mean for r in results], axis=0)
        row, head = np.unravel_index(int(np.argmax(mean)), mean.shape)
        lines.append(
            f"Validation loss {baseline:.3f}. The head whose loss matters most is layer "
            f"{first.attention[row]} head {head}: +{mean[row, head]:.3f} when mean-ablated, "
            f"{zero[row, head]:+.3f} when zeroed; the median head costs "
            f"{np.median(mean):+.3f} (mean-ablation).")
    if first.skipped:
        parts = []
        for kind in first.skipped:
            values = np.mean([r.skipped[kind] for r in results], axis=0)
            worst = int(np.nanargmax(values))
            parts.append(f"the {kind} of block {first.blocks[worst]} costs the most "
                         f"({values[worst]:+.3f})")
        lines.append("Skipping one sublayer: " + "; ".join(parts) + ".")
    if first.lens is not None:
        lens = np.mean([r.lens for r in results], axis=0)
        steps = ", ".join(f"{label} {value:.3f}"
                          for label, value in zip(first.lens_labels, lens, strict=True))
        lines.append(f"Logit lens (loss read after each depth): {steps}.")
    restored = [r.restored for r in results if r.restored is not None]
    if restored:
        share = np.mean(restored, axis=0)
        row, head = np.unravel_index(int(np.argmax(share)), share.shape)
        clean = np.mean([r.patch_clean for r in results])
        corrupt = np.mean([r.patch_corrupt for r in results])
        lines.append(
            f"Patching: on the second half of each window the loss is {clean:.3f} with its own "
            f"first half and {corrupt:.3f} with another window's; layer "
            f"{first.attention[row]} head {head} alone restores {100 * share[row, head]:.0f} % "
            "of that gap.")
    elif first.patched is not None:
        lines.append("Patching: the corrupted first half does not raise the second half's loss, "
                     "so there is no gap for a head to restore.")
    for name, reason in first.not_applicable.items():
        lines.append(f"{name}: {reason}.")
    if seeds > 1:
        lines.append(f"Numbers are means over {seeds} seeds.")
    return lines


def section(runs: Sequence[Run], root: Path, out_dir: Path, loader: Loader | None = None, *,
            max_batches: int | None = BATCHES) -> list[Block]:
    """Interventions on every seed of every variant, a subsection per variant."""
    started = time.perf_counter()
    blocks: list[Block] = [
        Heading(2, "What each part does (interventions)"),
        Paragraph(
            "Each trained model is changed inside and scored on its own first "
            f"{max_batches} validation batches: one attention head knocked out (zero- or "
            "mean-ablation), one sublayer skipped, the prediction read off after each block "
            "(logit lens), and each head's output copied from a clean input into a run whose "
            "first half was replaced (activation patching). Every seed with a final checkpoint "
            "is measured; figures show the mean and the spread over seeds."),
    ]
    for group in group_by_variant([r for r in runs if r.has_summary]):
        done = [r for r in group.completed if r.checkpoint is not None]
        if not done:
            continue
        blocks.append(Heading(3, f"`{group.name}`"))
        outcomes = [(run, intervene_run(run, loader, max_batches=max_batches)) for run in done]
        results = [o for _, o in outcomes if isinstance(o, Interventions)]
        for run, outcome in outcomes:
            if not isinstance(outcome, Interventions):
                blocks.append(Paragraph(f"*run `{run.run_id}`: interventions skipped: "
                                        f"{outcome}*"))
        if not results:
            continue
        where = out_dir / safe_name(group.name)
        blocks.append(Paragraph(" ".join(_headline(results))))
        drawn = [
            (figures.head_map(results, where / "heads.png"), "head knockout"),
            (figures.block_bars(results, where / "blocks.png"), "block knockout"),
            (figures.lens_curve(results, where / "lens.png"), "logit lens"),
            (figures.patch_map(results, where / "patch.png"), "activation patching"),
        ]
        for path, title in drawn:
            if path is not None:
                blocks.append(Image(path.relative_to(root).as_posix(), title))
    blocks.append(Paragraph(f"*This section took {time.perf_counter() - started:.1f} s.*"))
    return blocks
