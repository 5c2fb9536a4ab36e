"""`tzoo probe RUN --what heads|blocks|lens|patch`: the interventions on one trained run, as
tables on the terminal (and, with `--out`, the report's figures and a JSON of the numbers)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tzoo.components.errors import ConfigError, unknown_choice

from . import intervention_plots as figures
from .interventions import WHAT, Interventions, run_interventions


def parse_what(items: list[str] | None) -> list[str]:
    """'heads,lens' and repeated flags -> ['heads', 'lens'] (all four when none given)."""
    chosen = [part.strip() for item in items or () for part in item.split(",") if part.strip()]
    for name in chosen:
        if name not in WHAT:
            raise ConfigError(unknown_choice("intervention", name, WHAT), key="--what")
    return [name for name in WHAT if name in chosen] if chosen else list(WHAT)


def _grid(rows: list[str], values: np.ndarray, columns: list[str],
          corner: str = "layer") -> list[str]:
    width = max(7, *(len(c) + 1 for c in columns))
    lines = ["  " + corner.ljust(12) + "".join(c.rjust(width) for c in columns)]
    for label, row in zip(rows, values, strict=True):
        cells = "".join(("—" if np.isnan(v) else f"{v:+.3f}").rjust(width) for v in row)
        lines.append("  " + label.ljust(12) + cells)
    return lines


def _halves(result: Interventions) -> list[str]:
    """The knockouts on the repeated and the fresh tokens, for a run with `eval.repeat_loss`."""
    repeat, fresh = result.halves
    lines = ["", f"repeated half (eval.repeat_loss): loss {repeat:.4f} on the repeated tokens, "
             f"{fresh:.4f} on the fresh ones (the no-copy level)"]
    if result.halves_mean is not None:
        lines += ["", "head knockout: Δ loss on the repeated tokens, mean-ablation"]
        lines += _grid(result.attention, result.halves_mean[..., 0],
                       [f"h{h}" for h in range(result.heads)])
    if result.halves_skipped:
        lines += ["", "block knockout: Δ loss on the repeated tokens, then on the fresh ones"]
        kinds = list(result.halves_skipped)
        table = np.concatenate([result.halves_skipped[k] for k in kinds], axis=1)
        columns = [f"{k} {part}" for k in kinds for part in ("repeated", "fresh")]
        lines += _grid(result.blocks, table, columns, corner="block")
    return lines


def render(result: Interventions, what: list[str]) -> str:
    """The results as plain-text tables."""
    heads = [f"h{h}" for h in range(result.heads)]
    lines = [f"validation loss {result.baseline:.4f} (interventions took {result.seconds:.1f} s)"]
    if "heads" in what:
        lines += ["", "head knockout: Δ loss, zero-ablation"]
        lines += _grid(result.attention, result.zero, heads)
        lines += ["", "head knockout: Δ loss, mean-ablation"]
        lines += _grid(result.attention, result.mean, heads)
    if "blocks" in what:
        lines += ["", "block knockout: Δ loss with the sublayer skipped"]
        kinds = list(result.skipped)
        table = np.stack([result.skipped[k] for k in kinds], axis=1)
        lines += _grid(result.blocks, table, kinds, corner="block")
    if result.halves is not None:
        lines += _halves(result)
    if "lens" in what:
        lines += ["", "logit lens: loss read after each depth"]
        lines += [f"  {label:<12}{value:.4f}"
                  for label, value in zip(result.lens_labels, result.lens, strict=True)]
    if "patch" in what:
        if "patch" in result.not_applicable:
            lines += ["", f"activation patching: {result.not_applicable['patch']}"]
        else:
            lines += ["", f"activation patching: second-half loss clean {result.patch_clean:.4f}"
                      f", corrupted {result.patch_corrupt:.4f}; share of that gap restored by "
                      "patching one head"]
            restored = result.restored
            lines += (_grid(result.attention, restored, heads) if restored is not None
                      else ["  (no gap: the corrupted first half does not raise the loss)"])
    return "\n".join(lines) + "\n"


def probe_command(run: str, what: list[str] | None, batches: int | None,
                  out: str | None) -> int:
    """Run the interventions on one run directory and print them; exit status 0."""
    from tzoo.recipes.checkpoints import load_run
    from tzoo.recipes.rundir import write_json
    from tzoo.recipes.validation import Validation, run_threads

    chosen = parse_what(what)
    if batches is not None and batches < 1:
        raise ConfigError(f"must be a positive number of batches, got {batches}",
                          key="--batches")
    loaded = load_run(run)
    with run_threads(loaded.config):
        validation = Validation(loaded.config, loaded.model, max_batches=batches)
        result = run_interventions(
            loaded.model, validation.loss, windows=validation.causal_windows(), what=chosen,
            seed=loaded.config.get("seed"),
            halves=validation.halves if validation.splits_repeats else None)
    print(f"{run}: {len(validation.batches)} validation batches")
    print(render(result, chosen), end="")
    if out:
        folder = Path(out)
        written = [figures.heads_figure([result], folder / "heads.png"),
                   figures.depth_figure([result], folder / "depth.png")]
        write_json(folder / "interventions.json", result.as_dict())
        for path in [*filter(None, written), folder / "interventions.json"]:
            print(f"wrote {path}")
    return 0
