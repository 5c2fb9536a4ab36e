"""Who sees whom: causal, prefix and bidirectional masks, through the whole model.

Full cross product of the registered positions × placements × residuals × feed-forwards ×
attentions for every mask (today 135 tiny models per position and mask, a few milliseconds each;
variants with the example arguments their classes declare, see tests/variants.py; every
changed sequence rides in the same batch, so each model runs forward once). The models run in
float64 with weights drawn at a large scale (and ReZero's α set to 1/2), so that "unchanged"
can be checked to 1e-9 and "changed" is far above rounding. One CPU thread: at these sizes
threads only add synchronisation (and contention on a shared machine).
"""

from __future__ import annotations

import pytest
import torch
from variants import combinations, model_config, names

from tzoo.components import ConfigError, ModelConfig, build_model
from tzoo.components.families import MASKS

VOCAB, LENGTH, PREFIX = 32, 8, 4
UNCHANGED, CHANGED = 1e-9, 1e-6


pytestmark = pytest.mark.usefixtures("one_thread")


def _rest() -> list[tuple[str, ...]]:
    """(placement, residual, ffn, attention) for every registered combination."""
    return combinations("placement", "residual", "ffn", "attention")


def _model(position, mask, placement, residual, ffn, attention, arch="decoder",
           task_supplies_prefix=False):
    config = model_config(
        arch=arch, vocab_size=VOCAB, d_model=16, layers=2, heads=4, attention=attention,
        mask=mask, position=position, max_len=LENGTH, placement=placement, residual=residual,
        ffn=ffn, ffn_mult=2.0,
    )
    model = build_model(config, task_supplies_prefix=task_supplies_prefix).double().eval()
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if name.endswith("alpha"):  # ReZero starts at 0: every sublayer would be silent
                parameter.fill_(0.5)
            else:
                parameter.copy_(torch.randn(parameter.shape, generator=generator,
                                            dtype=parameter.dtype) * 0.5)
    return model


def _change_at(tokens: torch.Tensor, t: int) -> torch.Tensor:
    changed = tokens.clone()
    changed[:, t] = (changed[:, t] + 1 + torch.arange(tokens.shape[0])) % VOCAB
    return changed


def _differences(model, tokens: torch.Tensor, changes: list[int], **kwargs) -> torch.Tensor:
    """(changes, length): how far each position's output moves when token `changes[i]` changes.

    `tokens` is one sequence (1, length); it and its changed copies run as one batch.
    """
    batch = torch.cat([tokens] + [_change_at(tokens, t) for t in changes])
    with torch.no_grad():
        outputs = model(batch, **kwargs)
    return (outputs[1:] - outputs[:1]).abs().amax(dim=-1)


def _tokens() -> torch.Tensor:
    return torch.randint(0, VOCAB, (1, LENGTH), generator=torch.Generator().manual_seed(1))


def test_mask_matrices_written_out():
    """Who may see whom, by the masks' own `allowed` (the attention-map tests take it as each
    mask's word; the tests below hold the whole model to it)."""
    q = torch.arange(5)
    causal = torch.tensor([[1, 0, 0, 0, 0],
                           [1, 1, 0, 0, 0],
                           [1, 1, 1, 0, 0],
                           [1, 1, 1, 1, 0],
                           [1, 1, 1, 1, 1]], dtype=torch.bool)
    assert torch.equal(MASKS.build("causal").allowed(q, q), causal[None, None])
    assert MASKS.build("bidirectional").allowed(q, q) is None  # everything is visible
    prefix = torch.tensor([[1, 1, 1, 0, 0],
                           [1, 1, 1, 0, 0],
                           [1, 1, 1, 0, 0],
                           [1, 1, 1, 1, 0],
                           [1, 1, 1, 1, 1]], dtype=torch.bool)
    assert torch.equal(MASKS.build({"name": "prefix", "length": 3}).allowed(q, q),
                       prefix[None, None])
    per_sequence = MASKS.build("prefix").allowed(q, q, prefix_lengths=torch.tensor([3, 1]))
    assert torch.equal(per_sequence, torch.stack((prefix, causal))[:, None])


def _each_change(position, mask, changes: list[int]):
    """(block layout, changed token, how far each output moved) for every layout of `_rest`."""
    tokens = _tokens()
    for rest in _rest():
        moved = _differences(_model(position, mask, *rest), tokens, changes)
        for t, difference in zip(changes, moved, strict=True):
            yield rest, t, difference


@pytest.mark.parametrize("position", names("position", mask="causal"))
def test_causal_mask_hides_the_future(position):
    for rest, t, difference in _each_change(position, "causal", [1, LENGTH // 2, LENGTH - 2]):
        where = f"{position}, {rest}, token {t} changed"
        assert difference[:t].max() <= UNCHANGED, f"{where}: the past moved {difference}"
        assert difference[t] > CHANGED, f"{where}: position {t} ignored its own token"


@pytest.mark.parametrize("position", names("position", mask="prefix"))
def test_prefix_mask_is_bidirectional_inside_the_prefix_and_causal_after(position):
    tokens = _tokens()
    for rest in _rest():
        model = _model(position, {"name": "prefix", "length": PREFIX}, *rest)
        where = f"{position}, {rest}"
        t = PREFIX + 1
        inside, difference = _differences(model, tokens, [PREFIX - 1, t])
        # A late prefix token is seen by every position, the earliest prefix one included.
        assert (inside > CHANGED).all(), f"{where}: prefix not bidirectional {inside}"
        # After the prefix, the future stays hidden (from the prefix too).
        assert difference[:t].max() <= UNCHANGED, f"{where}: saw the future {difference}"
        assert difference[t:].min() > CHANGED, f"{where}: later positions blind {difference}"


@pytest.mark.parametrize("position", names("position", mask="bidirectional"))
def test_bidirectional_mask_sees_both_sides(position):
    changes = [0, LENGTH // 2, LENGTH - 1]
    for rest, t, difference in _each_change(position, "bidirectional", changes):
        assert (difference > CHANGED).all(), f"{position}, {rest}, {t}: {difference}"


@pytest.mark.parametrize("position", names("position", arch="encoder"))
def test_encoder_default_mask_is_bidirectional(position):
    """An encoder (mask left to the architecture) sees both sides; one block layout suffices:
    the mask is the same object as the decoder's explicit bidirectional one above."""
    tokens = _tokens()
    for placement in names("placement"):
        model = _model(position, None, placement, "add", "gelu", "gqa", arch="encoder")
        assert (_differences(model, tokens, [0, LENGTH - 1]) > CHANGED).all()


@pytest.mark.parametrize("arch", ["decoder", "encoder"])
def test_refused_bidirectional_combinations(arch):
    mask = "bidirectional" if arch == "decoder" else None
    with pytest.raises(ConfigError, match="position 'none'") as error:
        build_model(ModelConfig(arch=arch, mask=mask, position="none", d_model=16, heads=2))
    assert error.value.key == "model.position"
    bag = build_model(ModelConfig(arch=arch, mask=mask, d_model=16, heads=2,
                                  position={"name": "none", "bag_of_words": True}))
    tokens = torch.randint(4, 20, (1, 6))
    # it is what it says: the same words in another order give the same states, permuted
    order = torch.randperm(6)
    assert torch.allclose(bag(tokens)[:, order], bag(tokens[:, order]), atol=1e-5)
    with pytest.raises(ConfigError, match="symmetric") as error:
        build_model(ModelConfig(arch=arch, mask=mask, position="alibi", d_model=16, heads=2))
    assert error.value.key == "model.position"
    build_model(ModelConfig(arch=arch, mask=mask, position={"name": "alibi", "symmetric": True},
                            d_model=16, heads=2))


@pytest.mark.parametrize("mask", ["bidirectional", {"name": "prefix", "length": 3}])
def test_encoder_decoder_refuses_a_decoder_that_sees_future_targets(mask):
    with pytest.raises(ConfigError) as error:
        build_model(ModelConfig(arch="encoder_decoder", mask=mask,
                                position="sinusoidal", d_model=16, heads=2))
    assert error.value.key == "model.mask"
    assert "allowed mask: causal" in str(error.value)


def test_per_sequence_prefix_lengths():
    """`prefix_lengths` given per sequence: each row's prefix is bidirectional to its own end."""
    model = _model("rotary", {"name": "prefix"}, "pre", "add", "gelu", "mha",
                   task_supplies_prefix=True)
    tokens = _tokens().expand(2, -1)
    changed = _change_at(tokens, 4)
    lengths = torch.tensor([2, 5])
    with torch.no_grad():
        difference = (model(tokens, prefix_lengths=lengths)
                      - model(changed, prefix_lengths=lengths)).abs().amax(dim=-1)
    assert difference[0, :4].max() <= UNCHANGED  # row 0: position 4 is past its prefix
    assert (difference[1] > CHANGED).all()  # row 1: position 4 is inside its prefix


def test_causal_encoder_decoder_decoder_hides_future_targets():
    config = ModelConfig(arch="encoder_decoder", vocab_size=VOCAB, d_model=16, layers=2,
                         heads=4, position="rotary")
    model = build_model(config).double().eval()
    source, target = _tokens(), _tokens().flip(1)
    with torch.no_grad():
        before = model(source, target)
        after = model(source, _change_at(target, 5))
        moved = model(_change_at(source, 7), target)
    difference = (before - after).abs().amax(dim=(0, 2))
    assert difference[:5].max() <= UNCHANGED and difference[5] > 0
    assert ((before - moved).abs().amax(dim=(0, 2)) > 0).all()  # the source is seen everywhere
