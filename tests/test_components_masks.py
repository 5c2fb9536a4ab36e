"""Who sees whom: causal, prefix and bidirectional masks, through the whole model.

Full cross product of position × placement × residual × feed-forward × attention (mha, gqa, mqa)
for every mask (270 models per position and mask, a few milliseconds each). The models run in
float64 with weights drawn at a large scale (and ReZero's α set to 1/2), so that "unchanged"
can be checked to 1e-9 and "changed" is far above rounding.
"""

from __future__ import annotations

import itertools

import pytest
import torch

from tzoo.components import ConfigError, ModelConfig, build_model
from tzoo.components.families import ATTENTION, FFNS, PLACEMENTS, POSITIONS, RESIDUALS

VOCAB, LENGTH, PREFIX = 32, 8, 4
UNCHANGED, CHANGED = 1e-9, 1e-6
ATTENTIONS = {"mha": "mha", "gqa": {"name": "gqa", "kv_heads": 2}, "mqa": "mqa"}


def _attention_spec(name: str):
    return ATTENTIONS.get(name, name)


def _rest() -> list[tuple[str, str, str, str]]:
    """(placement, residual, ffn, attention) for every registered combination."""
    return list(itertools.product(
        PLACEMENTS.names(), RESIDUALS.names(), FFNS.names(), ATTENTION.names()
    ))


def _model(position, mask, placement, residual, ffn, attention, arch="decoder"):
    config = ModelConfig(
        arch=arch, vocab_size=VOCAB, d_model=16, layers=2, heads=4,
        attention=_attention_spec(attention), mask=mask, position=position, max_len=LENGTH,
        placement=placement, residual=residual, ffn=ffn, ffn_mult=2.0,
    )
    model = build_model(config).double().eval()
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if name.endswith("alpha"):  # ReZero starts at 0: every sublayer would be silent
                parameter.fill_(0.5)
            else:
                parameter.copy_(torch.randn(parameter.shape, generator=generator,
                                            dtype=parameter.dtype) * 0.5)
    return model


def _outputs(model, tokens: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model(tokens)


def _change_at(tokens: torch.Tensor, t: int) -> torch.Tensor:
    changed = tokens.clone()
    changed[:, t] = (changed[:, t] + 1 + torch.arange(tokens.shape[0])) % VOCAB
    return changed


def _difference(model, tokens: torch.Tensor, t: int) -> torch.Tensor:
    """Per-position largest change of the outputs when token `t` changes: shape (length,)."""
    before, after = _outputs(model, tokens), _outputs(model, _change_at(tokens, t))
    return (before - after).abs().amax(dim=(0, 2))


def _tokens() -> torch.Tensor:
    return torch.randint(0, VOCAB, (2, LENGTH), generator=torch.Generator().manual_seed(1))


@pytest.mark.parametrize("position", POSITIONS.names())
def test_causal_mask_hides_the_future(position):
    tokens = _tokens()
    for rest in _rest():
        model = _model(position, "causal", *rest)
        for t in (2, LENGTH - 3):
            difference = _difference(model, tokens, t)
            where = f"{position}, {rest}, token {t} changed"
            assert difference[:t].max() <= UNCHANGED, f"{where}: the past moved {difference}"
            assert difference[t] > CHANGED, f"{where}: position {t} ignored its own token"


@pytest.mark.parametrize("position", POSITIONS.names())
def test_prefix_mask_is_bidirectional_inside_the_prefix_and_causal_after(position):
    tokens = _tokens()
    for rest in _rest():
        model = _model(position, {"name": "prefix", "length": PREFIX}, *rest)
        where = f"{position}, {rest}"
        # A late prefix token is seen by every prefix position, the earliest included.
        difference = _difference(model, tokens, PREFIX - 1)
        assert (difference > CHANGED).all(), f"{where}: prefix not bidirectional {difference}"
        # After the prefix, the future stays hidden (from the prefix too).
        t = PREFIX + 1
        difference = _difference(model, tokens, t)
        assert difference[:t].max() <= UNCHANGED, f"{where}: saw the future {difference}"
        assert difference[t:].min() > CHANGED, f"{where}: later positions blind {difference}"


def _bidirectional_position(position: str):
    return {"name": "alibi", "symmetric": True} if position == "alibi" else position


@pytest.mark.parametrize("arch", ["decoder", "encoder"])
@pytest.mark.parametrize("position", [p for p in POSITIONS.names() if p != "none"])
def test_bidirectional_mask_sees_both_sides(position, arch):
    tokens = _tokens()
    mask = "bidirectional" if arch == "decoder" else None  # an encoder's default
    for rest in _rest():
        model = _model(_bidirectional_position(position), mask, *rest, arch=arch)
        for t in (0, LENGTH // 2, LENGTH - 1):
            difference = _difference(model, tokens, t)
            assert (difference > CHANGED).all(), f"{position}, {rest}, {t}: {difference}"


@pytest.mark.parametrize("arch", ["decoder", "encoder"])
def test_refused_bidirectional_combinations(arch):
    mask = "bidirectional" if arch == "decoder" else None
    with pytest.raises(ConfigError, match="position 'none'") as error:
        build_model(ModelConfig(arch=arch, mask=mask, position="none", d_model=16, heads=2))
    assert error.value.key == "model.position"
    with pytest.raises(ConfigError, match="symmetric") as error:
        build_model(ModelConfig(arch=arch, mask=mask, position="alibi", d_model=16, heads=2))
    assert error.value.key == "model.position"
    build_model(ModelConfig(arch=arch, mask=mask, position={"name": "alibi", "symmetric": True},
                            d_model=16, heads=2))


def test_encoder_decoder_refuses_a_bidirectional_decoder():
    with pytest.raises(ConfigError) as error:
        build_model(ModelConfig(arch="encoder_decoder", mask="bidirectional",
                                position="sinusoidal", d_model=16, heads=2))
    assert error.value.key == "model.mask"
    assert "causal" in str(error.value) and "prefix" in str(error.value)


def test_per_sequence_prefix_lengths():
    """`prefix_lengths` given per sequence: each row's prefix is bidirectional to its own end."""
    model = _model("rotary", {"name": "prefix"}, "pre", "add", "gelu", "mha")
    tokens = _tokens()
    lengths = torch.tensor([2, 5])
    with torch.no_grad():
        before = model(tokens, prefix_lengths=lengths)
        after = model(_change_at(tokens, 4), prefix_lengths=lengths)
    difference = (before - after).abs().amax(dim=-1)
    assert difference[0, :4].max() <= UNCHANGED  # row 0: position 4 is past its prefix
    assert (difference[1] > CHANGED).all()  # row 1: position 4 is inside its prefix


def test_causal_encoder_decoder_decoder_hides_future_targets():
    config = ModelConfig(arch="encoder_decoder", vocab_size=VOCAB, d_model=16, layers=2,
                         heads=4, position="rotary")
    model = build_model(config).double().eval()
    source, target = _tokens(), _tokens()
    with torch.no_grad():
        before = model(source, target)
        after = model(source, _change_at(target, 5))
        moved = model(_change_at(source, 7), target)
    difference = (before - after).abs().amax(dim=(0, 2))
    assert difference[:5].max() <= UNCHANGED and difference[5] > 0
    assert ((before - moved).abs().amax(dim=(0, 2)) > 0).all()  # the source is seen everywhere
