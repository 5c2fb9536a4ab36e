"""The induction-score probe: a head that attends exactly to the token after each token's earlier
occurrence scores 1 and other heads score low; it is read on the run's own repeated tokens (those
of `val/loss_repeat`) where the run's data repeats itself, else on random repeats of ordinary
symbols (never a special id). No training: attention is set by hand."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch
from conftest import TINY
from torch import nn

from tzoo.components import build_model
from tzoo.recipes.experiment import experiment_from_dict
from tzoo.recipes.language_modeling import seen_in_document
from tzoo.recipes.tokenization import N_SPECIAL, CharTokenizer
from tzoo.reports.probe_runner import repeated_inputs
from tzoo.reports.probes import (
    head_induction_scores,
    induction_scores,
    induction_targets,
    ordinary_ids,
    random_repeats,
)

EOS = 2


def _documents(*sequences: list[int]) -> torch.Tensor:
    """One window of induction documents: each sequence, then itself again, then eos."""
    return torch.tensor([[t for s in sequences for t in [*s, *s, EOS]]])


def _expected_targets(tokens: torch.Tensor) -> list[list[int]]:
    """The key after each token's earlier occurrence in its document, by a plain loop."""
    rows = []
    for row in tokens.tolist():
        targets, start = [], 0
        for q, token in enumerate(row):
            earlier = [p for p in range(start, q) if row[p] == token]
            targets.append(earlier[-1] + 1 if earlier and token != EOS else -1)
            if token == EOS:
                start = q + 1
        rows.append(targets)
    return rows


def _causal_uniform(length: int) -> torch.Tensor:
    return torch.ones(length, length).tril() / torch.arange(1, length + 1)[:, None]


def _one_hot_on(targets: torch.Tensor) -> torch.Tensor:
    """(batch, q, k): all attention on each query's target; uniform where it has none."""
    batch, length = targets.shape
    maps = _causal_uniform(length).repeat(batch, 1, 1)
    for b, q in torch.nonzero(targets >= 0).tolist():
        maps[b, q] = 0.0
        maps[b, q, targets[b, q]] = 1.0
    return maps


def test_targets_are_the_token_after_the_earlier_occurrence_on_exactly_the_repeated_tokens():
    tokens = _documents([7, 8, 9, 10, 11], [12, 9, 7])  # 9 and 7 again: a new document
    targets = induction_targets(tokens, EOS)
    assert targets.tolist() == _expected_targets(tokens)
    assert torch.equal(targets >= 0, seen_in_document(tokens, EOS))
    # exactly the second copy of each document is scored
    assert (targets >= 0).nonzero()[:, 1].tolist() == [5, 6, 7, 8, 9, 14, 15, 16]


def test_an_induction_head_scores_one_and_previous_token_or_uniform_heads_score_low():
    tokens = _documents([7, 8, 9, 10, 11, 12], [13, 14, 15, 16])
    targets = induction_targets(tokens, EOS)
    length = tokens.shape[1]
    previous = torch.eye(length).roll(-1, dims=1).tril()  # query q on key q-1
    previous[0, 0] = 1.0
    heads = torch.stack([_one_hot_on(targets)[0], previous, _causal_uniform(length)])
    scores = head_induction_scores([heads[None]], targets)
    assert scores.shape == (1, 3)
    assert scores[0, 0] == pytest.approx(1.0)
    assert scores[0, 1] == 0.0  # the previous token is never the one after the earlier match
    assert scores[0, 2] < 0.15


class _SetAttention(nn.Module):
    """A stand-in model whose every head attends exactly to the induction target of its query
    (by the plain loop), so the probe scores 1 exactly where it scores the repeated tokens."""

    def __init__(self, vocab: int, heads: int = 2):
        super().__init__()
        self.embedding = nn.Embedding(vocab, 4)
        self.heads = heads

    def forward(self, tokens: torch.Tensor, return_attention: bool = False):
        targets = torch.tensor(_expected_targets(tokens))
        maps = _one_hot_on(targets)[:, None].expand(-1, self.heads, -1, -1)
        logits = torch.zeros(*tokens.shape, self.embedding.num_embeddings)
        return (logits, [maps, maps]) if return_attention else logits


def _induction_config() -> dict:
    raw = copy.deepcopy(TINY)
    raw["data"].update(corpus="synthetic:induction", context=32,
                       options={"vocab": 16, "length": 8, "min_length": 4, "distinct": True,
                                "samples": {"train": 50, "validation": 40, "test": 10,
                                            "test_long": 10}})
    raw["eval"]["repeat_loss"] = True
    return experiment_from_dict(raw).plan()[0].config


def test_the_probe_scores_the_runs_own_repeated_tokens(tmp_path: Path) -> None:
    config = _induction_config()
    zoo_model = build_model({"vocab_size": 64, "d_model": 8, "layers": 1, "heads": 2,
                             "max_len": 32})
    inputs = repeated_inputs(config, zoo_model)  # the run's validation batch, through Validation
    assert inputs.shape == (TINY["data"]["batch_size"], 32)
    result = induction_scores(_SetAttention(64), tmp_path, run_tokens=inputs, eos_id=EOS)
    assert result.numbers["on_run_data"] == 1.0
    assert result.numbers["max_induction"] == pytest.approx(1.0)
    assert result.numbers["scored_tokens"] == int(seen_in_document(inputs, EOS).sum())
    assert "run's own validation data" in result.caption
    # A run that does not split off its repeats is not read on its data.
    config["eval"]["repeat_loss"] = False
    assert repeated_inputs(config, zoo_model) is None


def test_without_run_repeats_the_probe_draws_only_ordinary_symbols(tmp_path: Path) -> None:
    tokenizer = CharTokenizer("abcdefghijklmnopqrstuvwxyz")
    ordinary = ordinary_ids(tokenizer, tokenizer.vocab_size)
    assert ordinary.tolist() == list(range(N_SPECIAL, tokenizer.vocab_size))
    tokens = random_repeats(ordinary, half=12, batch=4, seed=0)
    assert tokens.min() >= N_SPECIAL
    assert torch.equal(tokens[:, :12], tokens[:, 12:])
    assert all(len(set(row)) == 12 for row in tokens[:, :12].tolist())  # distinct in a copy
    result = induction_scores(_SetAttention(tokenizer.vocab_size), tmp_path, ordinary=ordinary,
                              half=12, batch=4)
    assert result.numbers["on_run_data"] == 0.0
    assert result.numbers["scored_tokens"] == 4 * 12
    assert result.numbers["max_induction"] == pytest.approx(1.0)
    assert "ordinary symbols (no special ids)" in result.caption
