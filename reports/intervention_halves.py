"""The knockouts read on the repeated half, for a variant whose data repeats itself
(`eval.repeat_loss`): does knocking out one head destroy the repeated tokens' advantage over the
fresh ones, and does knocking out any other head leave it?

The fresh tokens are the no-copy level: nothing in the window predicts them, so their loss is
what the repeated tokens would cost a model that could not copy. Heads are compared by rank
within each seed (the one whose knockout hurts the repeated half most, the median of the
others), never by index across seeds. Knockouts are mean-ablations, as in the section's
headline.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .document import Block, Paragraph, Table
from .fmt import over_seeds
from .interventions import Interventions


def _seed(result: Interventions) -> str:
    return f"seed {result.seed}: " if result.seed is not None else ""


def _head_lines(results: Sequence[Interventions]) -> list[str]:
    """The repeated and fresh losses with the most harmful head knocked out and with the median
    other head, and the share of the repeated tokens' advantage each knockout takes away."""
    worst, others, where = [], [], []
    for r in results:
        losses = r.halves + r.halves_mean.reshape(-1, 2)  # (layer·head, [repeated, fresh])
        index = int(np.argmax(losses[:, 0]))
        rest = np.delete(losses, index, axis=0)
        worst.append(losses[index])
        others.append(np.median(rest, axis=0) if len(rest) else np.full(2, np.nan))
        layer, head = divmod(index, r.heads)
        where.append(f"{_seed(r)}layer {r.attention[layer]} head {head}")
    untouched = np.array([r.halves for r in results])
    worst, others = np.array(worst), np.array(others)
    gone = ["", ""]
    # A share of the advantage means something only where the repeated tokens had one.
    advantage = untouched[:, 1] - untouched[:, 0]
    if (advantage > 0).all():
        shares = [100 * (knocked[:, 0] - untouched[:, 0]) / advantage
                  for knocked in (worst, others)]
        gone = [f": {over_seeds(shares[0], 0)} % of their advantage over the fresh ones is gone "
                "(100 %: down to the no-copy level)",
                f": {over_seeds(shares[1], 0)} % gone"]
    line = ("With the head whose mean-ablation hurts the repeated half most knocked out "
            f"({'; '.join(where)}), the repeated tokens cost {over_seeds(worst[:, 0], 2)} "
            f"(fresh: {over_seeds(worst[:, 1], 2)}){gone[0]}.")
    if not np.isnan(others).any():
        line += (f" With the median other head knocked out they cost "
                 f"{over_seeds(others[:, 0], 2)} (fresh: {over_seeds(others[:, 1], 2)}){gone[1]}.")
    return [line]


def _block_lines(results: Sequence[Interventions]) -> list[str]:
    first = results[0]
    parts = []
    for kind in first.halves_skipped:
        for index, block in enumerate(first.blocks):
            losses = [r.halves + r.halves_skipped[kind][index] for r in results]
            if np.isnan(losses[0]).any():
                continue
            parts.append(f"the {kind} of block {block}: "
                         f"{over_seeds([x[0] for x in losses], 2)} "
                         f"(fresh {over_seeds([x[1] for x in losses], 2)})")
    return [f"One sublayer skipped, the repeated tokens cost: {'; '.join(parts)}."] if parts else []


def head_table(results: Sequence[Interventions]) -> Table:
    """Δ loss on the repeated tokens per layer × head, mean-ablation, a row per seed and layer."""
    heads = results[0].heads
    rows = [[str(r.seed if r.seed is not None else index), layer,
             *(f"{delta:+.3f}" for delta in r.halves_mean[row, :, 0])]
            for index, r in enumerate(results) for row, layer in enumerate(r.attention)]
    return Table(["seed", "layer", *(f"head {h}" for h in range(heads))], rows,
                 [False, False, *[True] * heads])


def halves_blocks(results: Sequence[Interventions]) -> list[Block]:
    """The repeated-half paragraph and head table, or nothing for runs without the split."""
    split = [r for r in results if r.halves is not None]
    if not split:
        return []
    lines = [
        "On the repeated half (`eval.repeat_loss`: the tokens seen earlier in their document, "
        "the split of `val/loss_repeat`; the fresh tokens, which no copy can predict, are the "
        "no-copy level): untouched, the repeated tokens cost "
        f"{over_seeds([r.halves[0] for r in split], 2)} nats against "
        f"{over_seeds([r.halves[1] for r in split], 2)} "
        "for the fresh ones."]
    if all(r.halves_mean is not None for r in split):
        lines += _head_lines(split)
    if all(r.halves_skipped for r in split):
        lines += _block_lines(split)
    blocks: list[Block] = [Paragraph(" ".join(lines))]
    if all(r.halves_mean is not None for r in split):
        blocks.append(Paragraph("Δ loss on the repeated tokens with one head knocked out "
                                "(mean-ablation), per seed:"))
        blocks.append(head_table(split))
    return blocks
