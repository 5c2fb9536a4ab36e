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
from .fmt import over_seeds
from .intervention_halves import halves_blocks
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
            return run_interventions(
                loaded.model, validation.loss, windows=validation.causal_windows(), what=what,
                seed=run.seed, halves=validation.halves if validation.splits_repeats else None)
    except Exception as exc:  # one run's failure costs its line, not the report
        return f"{type(exc).__name__}: {exc}"


def _where(result: Interventions, values: np.ndarray) -> str:
    row, head = np.unravel_index(int(np.argmax(values)), values.shape)
    seed = f"seed {result.seed}: " if result.seed is not None else ""
    return f"{seed}layer {result.attention[row]} head {head}"


def _headline(results: Sequence[Interventions]) -> list[str]:
    """One sentence per intervention with the numbers that matter, over seeds. Heads are
    compared by rank (the most important one of each seed), never by index across seeds."""
    first = results[0]
    lines = [f"Loss on these batches {over_seeds([r.baseline for r in results])}, untouched."]
    if first.zero is not None:
        lines.append(
            "One head knocked out: the most important head of each seed costs "
            f"+{over_seeds([float(r.mean.max()) for r in results])} under mean-ablation "
            f"(+{over_seeds([float(r.zero.max()) for r in results])} zeroed; "
            f"{'; '.join(_where(r, r.mean) for r in results)}), the median head "
            f"+{over_seeds([float(np.median(r.mean)) for r in results])}.")
    if first.skipped:
        parts = []
        for kind in first.skipped:
            values = np.stack([r.skipped[kind] for r in results])
            worst = int(np.nanargmax(values.mean(axis=0)))
            parts.append(f"{kind} of block {first.blocks[worst]} "
                         f"+{over_seeds(list(values[:, worst]))}")
        lines.append("One sublayer skipped, the costliest of each kind: " + "; ".join(parts)
                     + ".")
    if first.lens is not None:
        lens = np.stack([r.lens for r in results])
        steps = ", ".join(f"{label} {over_seeds(list(lens[:, i]), 2)}"
                          for i, label in enumerate(first.lens_labels))
        lines.append(f"Logit lens, the loss read after each depth: {steps}.")
    patched = [r for r in results if r.restored is not None]
    if patched:
        restored = [100 * float(r.restored.max()) for r in patched]
        lines.append(
            "Patching: with another window's first half, the loss on the second half rises "
            f"from {over_seeds([r.patch_clean for r in patched])} to "
            f"{over_seeds([r.patch_corrupt for r in patched])}; the head that restores most of "
            f"that gap restores {over_seeds(restored, 0)} % "
            f"({'; '.join(_where(r, r.restored) for r in patched)}).")
    elif first.patched is not None:
        lines.append("Patching: another window's first half does not raise the loss on the "
                     "second half, so there is no gap for a head to restore.")
    titles = {"heads": "Head knockout", "blocks": "Block knockout", "lens": "Logit lens",
              "patch": "Activation patching"}
    for name, reason in first.not_applicable.items():
        lines.append(f"{titles.get(name, name)}: {reason}.")
    if len(results) > 1:
        lines.append(f"(± is the standard deviation over {len(results)} seeds.)")
    return lines


def section(runs: Sequence[Run], root: Path, out_dir: Path, loader: Loader | None = None, *,
            max_batches: int | None = BATCHES) -> list[Block]:
    """Interventions on every seed of every variant, a subsection per variant."""
    started = time.perf_counter()
    blocks: list[Block] = [
        Heading(2, "What each part does (interventions)"),
        Paragraph(
            "Each trained model is changed inside and scored on its own "
            f"{'' if max_batches is None else f'first {max_batches} '}validation batches (the "
            "batches `val/loss` averages, with the run's tokenizer and objective): one "
            "attention head knocked out (zero- or "
            "mean-ablation), one sublayer skipped, the prediction read off after each block "
            "(logit lens), and each head's output copied from a clean input into a run whose "
            "first half was replaced (activation patching). Every seed with a final checkpoint "
            "is measured. Blocks and depths are shown as the mean over seeds with their spread; "
            "heads seed by seed, since training may give any head any job (an index names the "
            "same head across seeds only where the architecture fixes it, as ALiBi's slopes "
            "do)."),
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
        blocks += halves_blocks(results)
        drawn = [
            (figures.heads_figure(results, where / "heads.png"),
             "head knockout and activation patching"),
            (figures.depth_figure(results, where / "depth.png"), "block knockout and logit lens"),
        ]
        for path, title in drawn:
            if path is not None:
                blocks.append(Image(path.relative_to(root).as_posix(), title))
    blocks.append(Paragraph(f"*This section took {time.perf_counter() - started:.1f} s.*"))
    return blocks
