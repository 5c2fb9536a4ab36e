"""Cached generation computes exactly what recomputing from scratch computes.

For decoder-only and encoder-decoder models and every position variant (and every attention
sharing scheme for the decoder-only ones): greedy `generate` with the key/value cache gives the
same tokens, and per-step logits to 1e-5, as `use_cache=False`; so do the prefix-mask decoder
(fixed length and per-sequence `prefix_lengths`), batched prompts with source padding, sampling
with a seeded generator, and `beam_search`.
"""

from __future__ import annotations

import pytest
import torch
from variants import model_config, names

from tzoo.components import beam_search, build_model, generate

VOCAB, BOS, STEPS = 48, 1, 10
TOLERANCE = 1e-5
#: a prefix mask whose lengths the caller gives per sequence (`prefix_lengths`)
SUPPLIED_PREFIX = {"name": "prefix"}


pytestmark = pytest.mark.usefixtures("one_thread")


def _model(arch: str, position: str, *, attention="mha", mask=None, seed=0, **overrides):
    torch.manual_seed(seed)
    values = dict(
        arch=arch, vocab_size=VOCAB, d_model=32, layers=2, heads=4, attention=attention,
        mask=mask, position=position, max_len=64, init_std=0.2,
    )
    values.update(overrides)
    return build_model(model_config(**values), task_supplies_prefix=True).eval()


def _prompt(batch=2, length=5, seed=1):
    return torch.randint(2, VOCAB, (batch, length), generator=torch.Generator().manual_seed(seed))


def _assert_same(model, **kwargs):
    cached_tokens, cached_logits = generate(model, use_cache=True, return_logits=True, **kwargs)
    fresh_tokens, fresh_logits = generate(model, use_cache=False, return_logits=True, **kwargs)
    torch.testing.assert_close(cached_logits, fresh_logits, atol=TOLERANCE, rtol=0)
    assert torch.equal(cached_tokens, fresh_tokens)
    return cached_tokens


@pytest.mark.parametrize("attention", names("attention"))
@pytest.mark.parametrize("position", names("position"))
def test_decoder_only_cache_matches_recomputation(position, attention):
    model = _model("decoder", position, attention=attention)
    tokens = _assert_same(model, prompt=_prompt(), max_new_tokens=STEPS)
    assert tokens.shape == (2, STEPS)


@pytest.mark.parametrize("position", names("position", arch="encoder_decoder"))
def test_encoder_decoder_cache_matches_recomputation(position):
    model = _model("encoder_decoder", position, decoder_layers=3)
    source = _prompt(length=7)
    padding = torch.ones_like(source, dtype=torch.bool)
    padding[1, 4:] = False
    tokens = _assert_same(model, source=source, source_padding=padding, bos_id=BOS,
                          max_new_tokens=STEPS)
    assert tokens.shape == (2, STEPS)
    _assert_same(model, source=source, bos_id=BOS, max_new_tokens=STEPS)


@pytest.mark.parametrize("position", names("position", mask="prefix"))
def test_prefix_mask_cache_matches_recomputation(position):
    """A fixed-length prefix covered by the prompt, and per-sequence `prefix_lengths`."""
    fixed = _model("decoder", position, mask={"name": "prefix", "length": 4})
    _assert_same(fixed, prompt=_prompt(length=6), max_new_tokens=STEPS)
    supplied = _model("decoder", position, mask=SUPPLIED_PREFIX)
    _assert_same(supplied, prompt=_prompt(length=6), prefix_lengths=torch.tensor([3, 6]),
                 max_new_tokens=STEPS)


def test_sampling_with_a_seed_matches_recomputation():
    model = _model("decoder", "rotary", attention="mqa")
    kwargs = dict(prompt=_prompt(), max_new_tokens=STEPS, temperature=0.8, top_k=10)
    cached = generate(model, use_cache=True, generator=torch.Generator().manual_seed(3), **kwargs)
    fresh = generate(model, use_cache=False, generator=torch.Generator().manual_seed(3), **kwargs)
    assert torch.equal(cached, fresh)


def test_eos_stops_and_pads_alike():
    model = _model("decoder", "alibi")
    prompt = _prompt()
    first = generate(model, prompt, max_new_tokens=1)
    eos = int(first[0, 0])  # row 0's first token becomes the end of sequence
    cached = generate(model, prompt, max_new_tokens=STEPS, eos_id=eos, pad_id=0)
    fresh = generate(model, prompt, max_new_tokens=STEPS, eos_id=eos, pad_id=0, use_cache=False)
    assert torch.equal(cached, fresh)
    assert cached[0, 0] == eos and (cached[0, 1:] == 0).all()


@pytest.mark.parametrize(
    "arch,position",
    [(arch, p) for arch in ("decoder", "encoder_decoder") for p in names("position", arch=arch)],
)
def test_beam_search_cache_matches_recomputation(arch, position):
    model = _model(arch, position, attention="gqa")
    if arch == "decoder":
        inputs = dict(prompt=_prompt())
    else:
        inputs = dict(source=_prompt(length=6), bos_id=BOS)
    kwargs = dict(beam_size=3, max_new_tokens=STEPS, eos_id=5, **inputs)
    cached = beam_search(model, use_cache=True, **kwargs)
    fresh = beam_search(model, use_cache=False, **kwargs)
    assert torch.equal(cached, fresh)
    assert cached.shape[0] == 2


def test_beam_search_with_prefix_lengths_matches_recomputation():
    model = _model("decoder", "relative", mask=SUPPLIED_PREFIX)
    kwargs = dict(prompt=_prompt(length=6), prefix_lengths=torch.tensor([2, 6]), beam_size=3,
                  max_new_tokens=STEPS)
    assert torch.equal(beam_search(model, **kwargs), beam_search(model, use_cache=False, **kwargs))


def test_beam_of_one_is_greedy():
    model = _model("decoder", "sinusoidal")
    prompt = _prompt()
    assert torch.equal(beam_search(model, prompt, beam_size=1, max_new_tokens=STEPS),
                       generate(model, prompt, max_new_tokens=STEPS))


def test_cached_generation_refuses_a_prefix_longer_than_the_prompt():
    """The cache cannot revise earlier prefix positions once a generated token joins the
    prefix, so it refuses (before this check it silently diverged from recomputation)."""
    fixed = _model("decoder", "rotary", mask={"name": "prefix", "length": 8})
    with pytest.raises(ValueError, match="extends past the prompt"):
        generate(fixed, _prompt(length=4), max_new_tokens=STEPS)
    supplied = _model("decoder", "rotary", mask=SUPPLIED_PREFIX)
    with pytest.raises(ValueError, match="extends past the prompt"):
        beam_search(supplied, _prompt(length=4), prefix_lengths=torch.tensor([2, 6]),
                    max_new_tokens=STEPS)
    # recomputation has no cache to invalidate
    generate(fixed, _prompt(length=4), max_new_tokens=STEPS, use_cache=False)
