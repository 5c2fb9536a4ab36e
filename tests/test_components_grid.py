"""Every registered combination builds, runs forward and backward, with finite gradients.

Covering design, not the full cross product: the full product of the registries (3 architectures
× 6 positions × 3 attentions × 3 masks × 4 norms × 3 placements × 3 residuals × 5 feed-forwards ×
2 outputs, times bias and dropout on/off) is ~230,000 models, far beyond the time budget. The
rows below are an *all-pairs* (pairwise) covering array built greedily (AETG-style, seeded, so
the same rows every run): every value of every factor meets every value of every other factor in
at least one valid row, which is what catches the interaction bugs two variants cause together.
The factors are read from the registries at collection time, so a newly registered variant is
covered automatically.

Pairs that no valid configuration can hold are refused by validation on purpose; the test
checks that those are exactly the documented ones (`REFUSED_PAIRS` in tests/variants.py), and
that each of them raises `ConfigError`.
"""

from __future__ import annotations

import itertools
import random

import pytest
import torch
import torch.nn.functional as F
from variants import FIELDS, REFUSED_PAIRS, chosen, model_config, names

from tzoo.components import ConfigError, ModelConfig, build_model

VOCAB = 24
FACTORS: dict[str, list] = {
    **{field: names(field) for field in FIELDS},
    "bias": [True, False],
    "dropout": [0.0, 0.1],
}


pytestmark = pytest.mark.usefixtures("one_thread")


def config_for(row: dict) -> ModelConfig:
    """The model a row of factor values describes (each variant with its example arguments)."""
    return model_config(
        vocab_size=VOCAB, d_model=16, layers=1, decoder_layers=2, heads=4, max_len=16,
        ffn_mult=2.0, **row,
    )


def _valid(row: dict) -> bool:
    try:
        config_for(row).validate()
    except ConfigError:
        return False
    return True


def _pairs(row: dict) -> set:
    items = sorted(row.items())
    return {(a, b) for a, b in itertools.combinations(items, 2)}


def all_pairs(factors: dict[str, list], *, tries: int = 40, seed: int = 0):
    """(rows, impossible pairs): a greedy pairwise covering array of valid rows."""
    rng = random.Random(seed)
    names = sorted(factors)
    uncovered = {
        ((a, x), (b, y))
        for a, b in itertools.combinations(names, 2)
        for x in factors[a]
        for y in factors[b]
    }
    rows, impossible = [], set()
    while uncovered:
        (a, x), (b, y) = target = min(uncovered, key=repr)
        best, best_gain = None, 0
        for _ in range(tries):
            row = {name: rng.choice(factors[name]) for name in names}
            row[a], row[b] = x, y
            gain = len(_pairs(row) & uncovered)
            if gain > best_gain and _valid(row):
                best, best_gain = row, gain
        if best is None:
            impossible.add(target)
            uncovered.discard(target)
            continue
        rows.append(best)
        uncovered -= _pairs(best)
    return rows, impossible


ROWS, IMPOSSIBLE = all_pairs(FACTORS)


def _row_id(row: dict) -> str:
    return "-".join(str(row[name]) for name in FACTORS)


def test_covering_array_covers_every_possible_pair():
    covered = set().union(*(_pairs(row) for row in ROWS))
    for a, b in itertools.combinations(sorted(FACTORS), 2):
        for x, y in itertools.product(FACTORS[a], FACTORS[b]):
            pair = ((a, x), (b, y))
            assert pair in covered or pair in IMPOSSIBLE, pair
    assert {name for (name, _), _ in covered} | {name for _, (name, _) in covered} == set(FACTORS)
    assert len(ROWS) < 80  # the point of a covering design: far fewer rows than the product


def test_only_the_documented_pairs_are_impossible():
    assert IMPOSSIBLE == REFUSED_PAIRS
    base = {**chosen(ModelConfig()), "bias": True, "dropout": 0.0}  # the defaults build
    for (a, x), (b, y) in IMPOSSIBLE:
        with pytest.raises(ConfigError):
            build_model(config_for({**base, a: x, b: y}))


def _loss(model, arch: str) -> torch.Tensor:
    generator = torch.Generator().manual_seed(0)
    tokens = torch.randint(0, VOCAB, (2, 7), generator=generator)
    padding = torch.ones_like(tokens, dtype=torch.bool)
    padding[1, 5:] = False
    if arch == "encoder_decoder":
        target = torch.randint(0, VOCAB, (2, 5), generator=generator)
        logits = model(tokens, target, source_padding=padding)
        labels = target
    else:
        logits = model(tokens, padding=padding)
        labels = tokens
    assert logits.shape == (*labels.shape, VOCAB)
    assert torch.isfinite(logits).all()
    return F.cross_entropy(logits.flatten(0, 1), labels.flatten())


@pytest.mark.parametrize("row", ROWS, ids=[_row_id(row) for row in ROWS])
def test_combination_trains_one_step(row):
    torch.manual_seed(0)
    model = build_model(config_for(row))
    model.train()
    with torch.no_grad():  # ReZero's α starts at 0, which would hide the sublayers' gradients
        for name, parameter in model.named_parameters():
            if name.endswith("alpha"):
                parameter.fill_(0.5)
    _loss(model, row["arch"]).backward()
    for name, parameter in model.named_parameters():
        assert parameter.grad is not None, f"{name} got no gradient"
        assert torch.isfinite(parameter.grad).all(), f"{name} has a non-finite gradient"
    # the sublayers really learn: every weight matrix gets some signal
    for name, parameter in model.named_parameters():
        if parameter.dim() == 2 and "position" not in name:
            assert parameter.grad.abs().sum() > 0, f"{name} got an all-zero gradient"
