"""The Lightning tasks by hand (no Trainer, for speed): BERT masking proportions, the loss
falling on every objective, cached vs uncached decoding, and BLEU/chrF against sacreBLEU."""

from __future__ import annotations

import copy
import functools

import pytest
import sacrebleu
import torch

from tzoo.components import generate
from tzoo.recipes import translation
from tzoo.recipes.experiment import experiment_from_dict
from tzoo.recipes.language_modeling import LanguageModeling
from tzoo.recipes.task import step_generator
from tzoo.recipes.tasks import build_task
from tzoo.recipes.tokenization import N_SPECIAL
from tzoo.recipes.translation import Translation, corpus_scores

STEPS = 100


pytestmark = pytest.mark.usefixtures("one_thread")


def _lm_task(tiny: dict, objective: str, mask: str | None = None):
    raw = copy.deepcopy(tiny)
    raw["task"] = {"name": "lm", "objective": objective}
    raw["train"]["steps"] = STEPS
    # English text: every objective learns its character statistics within a hundred steps
    raw["data"].update(corpus="builtin:pydoc", options={})
    raw["model"].update(d_model=32, layers=2, heads=4, **({"mask": mask} if mask else {}))
    config = experiment_from_dict(raw).base
    torch.manual_seed(0)
    built = build_task(config, seed=0)
    assert isinstance(built.task, LanguageModeling)
    return built.task, built.datamodule


def _translation_task(tiny: dict, arch: str, mask: str | None = None):
    raw = copy.deepcopy(tiny)
    raw["task"] = {"name": "translation"}
    raw["train"]["steps"] = 2 * STEPS
    raw["data"].update(corpus="synthetic:reverse", max_len=12, batch_size=16,
                       options={"vocab": 6, "length": 5,
                                "samples": {"train": 400, "validation": 32, "test": 16,
                                            "test_long": 8}})
    raw["model"] = {"arch": arch, "d_model": 32, "layers": 2, "heads": 4, "position": "rotary",
                    **({"mask": mask} if mask else {})}
    raw["eval"].update(max_new_tokens=10)
    config = experiment_from_dict(raw).base
    torch.manual_seed(0)
    built = build_task(config, seed=0)
    assert isinstance(built.task, Translation)
    return built.task, built.datamodule


def _train(task, loader, eval_loss, steps: int = STEPS) -> tuple[float, float]:
    """(evaluation loss before, after) `steps` AdamW steps of `task.loss`."""
    optimizer = torch.optim.AdamW(task.parameters(), lr=3e-3, weight_decay=0.0)
    task.train()
    with torch.no_grad():
        before = eval_loss()
    for step, batch in enumerate(loader):
        if step == steps:
            break
        loss, counted = task.loss(batch)
        assert counted > 0 and torch.isfinite(loss)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    task.eval()
    with torch.no_grad():
        after = eval_loss()
    return before, after


# ------------------------------------------------------------------------ masked LM


def test_bert_masking_proportions(tiny):
    task, _ = _lm_task(tiny, "masked", mask="bidirectional")
    vocab = task.vocab_size
    tokens = torch.randint(N_SPECIAL, vocab, (400, 500), generator=torch.Generator().manual_seed(1))
    inputs, targets, prefix = task._mask_tokens(tokens, step_generator(0, 0, "test"))
    assert prefix is None
    picked = targets != -100
    n, k = tokens.numel(), int(picked.sum())
    # 200k positions: the standard deviation of each proportion is < 0.4 %, bounds are ~4-5 sd
    assert abs(k / n - 0.15) < 0.005
    assert torch.equal(targets[picked], tokens[picked])        # loss on the original tokens
    assert torch.equal(inputs[~picked], tokens[~picked])       # unpicked positions untouched
    masked = picked & (inputs == task.mask_id)
    changed = picked & (inputs != task.mask_id) & (inputs != tokens)
    same = picked & (inputs == tokens)
    # a random replacement equals the original with probability 1 / (non-special symbols)
    collide = 1 / (vocab - N_SPECIAL)
    assert abs(int(masked.sum()) / k - 0.8) < 0.02
    assert abs(int(changed.sum()) / k - 0.1 * (1 - collide)) < 0.015
    assert abs(int(same.sum()) / k - (0.1 + 0.1 * collide)) < 0.015
    assert int(inputs[changed].min()) >= N_SPECIAL  # random tokens are never special ones
    # the masks are a function of the generator's seed (so a resumed step masks the same)
    again = task._mask_tokens(tokens, step_generator(0, 0, "test"))
    assert torch.equal(again[0], inputs) and torch.equal(again[1], targets)


# ------------------------------------------------------------------------ the loss falls


@pytest.mark.parametrize(("objective", "mask"), [
    ("causal", None), ("masked", "bidirectional"), ("prefix", "prefix"),
])
def test_lm_loss_falls(tiny, objective, mask):
    task, datamodule = _lm_task(tiny, objective, mask)
    val = next(iter(datamodule.val_dataloader()[0]))["tokens"]

    def eval_loss() -> float:
        return float(task._loss(val, task._eval_generator(0))[0])

    before, after = _train(task, datamodule.train_dataloader(), eval_loss)
    assert after < 0.8 * before, (before, after)


@pytest.fixture(scope="module")
def trained_translation():
    """Translation models trained a little once per arch (the cache tests reuse them)."""
    from conftest import TINY

    done = {}
    for arch, mask in (("encoder_decoder", None), ("decoder", None), ("decoder", "prefix")):
        task, datamodule = _translation_task(TINY, arch, mask)
        val = next(iter(datamodule.val_dataloader()))

        def eval_loss(task=task, val=val) -> float:
            return float(task._loss(val, 0.0)[0])

        losses = _train(task, datamodule.train_dataloader(), eval_loss, steps=2 * STEPS)
        done[arch if mask is None else f"{arch}+{mask}"] = (task, val, losses)
    return done


@pytest.mark.parametrize("arch", ["encoder_decoder", "decoder", "decoder+prefix"])
def test_translation_loss_falls(trained_translation, arch):
    _, _, (before, after) = trained_translation[arch]
    assert after < 0.6 * before, (before, after)


@pytest.mark.parametrize("arch", ["encoder_decoder", "decoder", "decoder+prefix"])
def test_cached_and_uncached_translations_agree(trained_translation, arch, monkeypatch):
    task, batch, _ = trained_translation[arch]
    cached = task.translate(batch)
    cached_beam = task.translate(batch, beam_size=3)
    assert any(cached) and len(cached) == len(batch["target_text"])
    monkeypatch.setattr(translation, "generate", functools.partial(generate, use_cache=False))
    monkeypatch.setattr(translation, "beam_search",
                        functools.partial(translation.beam_search, use_cache=False))
    assert task.translate(batch) == cached
    assert task.translate(batch, beam_size=3) == cached_beam


# ------------------------------------------------------------------------ BLEU and chrF

HYPOTHESES = [
    "the cat sat on the mat",
    "a quick brown fox jumps over the lazy dog",
    "hello there general kenobi",
    "zwei hundert",
    "It's 3.5% (roughly) — isn't it?",
    "ab",
    "",
]
REFERENCES = [
    "the cat is on the mat",
    "the quick brown fox jumped over the lazy dog",
    "hello there, general kenobi!",
    "zweihundert",
    "It is 3.5 % (roughly) - isn't it?",
    "abc",
    "nothing",
]


def test_bleu_and_chrf_equal_sacrebleu():
    scores = corpus_scores(HYPOTHESES, REFERENCES)
    # BLEU comes from torchmetrics, which computes in float32: equal to sacreBLEU to ~1e-6.
    assert scores["bleu"] == pytest.approx(
        sacrebleu.corpus_bleu(HYPOTHESES, [REFERENCES]).score, abs=1e-4)
    # sacreBLEU's default chrF: character order 6, word order 0, beta 2
    assert scores["chrf"] == pytest.approx(
        sacrebleu.corpus_chrf(HYPOTHESES, [REFERENCES]).score, abs=1e-9)
    assert scores["exact_match"] == 0.0
    # short corpora (one-symbol targets of the synthetic tasks) too; BLEU, which would read
    # 0 on references shorter than 4 words whatever the output, is left out there
    for hyps, refs in ((["ab"], ["abc"]), (["3", "4"], ["3", "5"])):
        scores = corpus_scores(hyps, refs)
        assert scores["chrf"] == pytest.approx(sacrebleu.corpus_chrf(hyps, [refs]).score)
        assert "bleu" not in scores
    perfect = corpus_scores(["the cat sat on the mat"], ["the cat sat on the mat"])
    assert perfect == {"bleu": pytest.approx(100.0), "chrf": pytest.approx(100.0),
                       "exact_match": 100.0}
    assert corpus_scores([], []) == {}
