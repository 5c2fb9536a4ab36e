"""Position variants: the properties their papers promise, and length limits."""

from __future__ import annotations

import math

import pytest
import torch
from variants import combinations, model_config, names

from tzoo.components import ConfigError, ContextTooLong, build_model
from tzoo.components.families import POSITIONS
from tzoo.components.positions import alibi_slopes, relative_buckets

HEAD_DIM = 16


# --- rotary ------------------------------------------------------------------------------------


def _rotary_score(rotary, q: torch.Tensor, k: torch.Tensor, q_position: int,
                  k_position: int) -> torch.Tensor:
    """q·k after rotating q to `q_position` and k to `k_position` (per head)."""
    positions = torch.tensor([q_position, k_position])
    both = torch.stack((q, k), dim=1)  # (batch, 2, heads, head_dim): row 0 is q, row 1 is k
    rotated_q, rotated_k = rotary.rotate(both, both, positions)
    return (rotated_q[:, 0] * rotated_k[:, 1]).sum(-1)


def test_rotary_scores_depend_only_on_the_offset():
    torch.manual_seed(0)
    rotary = POSITIONS.build("rotary", head_dim=HEAD_DIM)
    q = torch.randn(2, 3, HEAD_DIM, dtype=torch.float64)
    k = torch.randn(2, 3, HEAD_DIM, dtype=torch.float64)
    for q_position, k_position in [(5, 2), (2, 5), (7, 7), (0, 30)]:
        score = _rotary_score(rotary, q, k, q_position, k_position)
        for shift in (1, 13, 100, 300, 1000):
            shifted = _rotary_score(rotary, q, k, q_position + shift, k_position + shift)
            # the angle tables are float32 (as in GPT-NeoX and Llama): an angle of ~1000
            # radians is good to ~1e-4 only
            tolerance = 1e-5 if shift <= 300 else 1e-4
            torch.testing.assert_close(shifted, score, atol=tolerance, rtol=0)
    # ...and it does depend on the offset, and rotating keeps lengths.
    assert not torch.allclose(_rotary_score(rotary, q, k, 3, 0), _rotary_score(rotary, q, k, 0, 0))
    rotated, _ = rotary.rotate(q[:, None], k[:, None], torch.tensor([17]))
    torch.testing.assert_close(rotated.norm(dim=-1), q[:, None].norm(dim=-1))


def test_rotary_position_zero_is_the_identity():
    rotary = POSITIONS.build("rotary", head_dim=HEAD_DIM)
    q, k = torch.randn(1, 1, 2, HEAD_DIM), torch.randn(1, 1, 2, HEAD_DIM)
    rotated_q, rotated_k = rotary.rotate(q, k, torch.tensor([0]))
    torch.testing.assert_close(rotated_q, q)
    torch.testing.assert_close(rotated_k, k)


# --- ALiBi -------------------------------------------------------------------------------------


def _paper_slopes(n: int) -> list[float]:
    """Press et al. 2022, section 3 and their reference code, written out independently: for a
    power of two n, the geometric sequence with first term and ratio 2^(-8/n); otherwise the
    slopes of the largest power of two below n, then the odd-indexed terms 1, 3, 5, ... of the
    sequence for twice that power, until there are n."""
    power = 1
    while power * 2 <= n:
        power *= 2
    slopes = [2.0 ** (-8.0 * (i + 1) / power) for i in range(power)]
    extra = [2.0 ** (-8.0 * (i + 1) / (2 * power)) for i in range(2 * power)]
    slopes += extra[0::2][: n - power]
    return slopes


def test_alibi_slopes_for_eight_heads_are_the_papers():
    expected = [1 / 2, 1 / 4, 1 / 8, 1 / 16, 1 / 32, 1 / 64, 1 / 128, 1 / 256]
    torch.testing.assert_close(alibi_slopes(8), torch.tensor(expected))


def test_alibi_slopes_for_six_heads_written_out():
    # four heads: 2^-2, 2^-4, 2^-6, 2^-8; then the first two of 2^-1, 2^-3, 2^-5, 2^-7
    expected = [2**-2, 2**-4, 2**-6, 2**-8, 2**-1, 2**-3]
    torch.testing.assert_close(alibi_slopes(6), torch.tensor(expected))


@pytest.mark.parametrize("heads", [1, 2, 3, 4, 5, 6, 7, 8, 12, 16, 20, 24])
def test_alibi_slopes_follow_the_paper_rule(heads):
    torch.testing.assert_close(alibi_slopes(heads), torch.tensor(_paper_slopes(heads)))


def test_alibi_bias_is_minus_slope_times_distance():
    alibi = POSITIONS.build("alibi", heads=4)
    positions = torch.arange(5)
    bias = alibi.bias(positions, positions)
    assert bias.shape == (4, 5, 5)
    distance = (positions[:, None] - positions[None, :]).abs().float()
    torch.testing.assert_close(bias, -alibi_slopes(4)[:, None, None] * distance)


# --- relative (T5) buckets ---------------------------------------------------------------------


@pytest.mark.parametrize("num_buckets,max_distance", [(32, 128), (8, 16), (16, 100)])
def test_relative_buckets_causal_are_monotone_in_distance(num_buckets, max_distance):
    distance = torch.arange(0, 4 * max_distance)
    buckets = relative_buckets(-distance, bidirectional=False, num_buckets=num_buckets,
                               max_distance=max_distance)
    assert (buckets[1:] >= buckets[:-1]).all()
    assert buckets[0] == 0 and buckets.max() == num_buckets - 1
    exact = num_buckets // 2
    assert buckets[:exact].tolist() == list(range(exact))  # small offsets: one bucket each
    assert (buckets[max_distance:] == num_buckets - 1).all()  # far: one bucket
    # a causal model never looks ahead: future offsets fall in the "same position" bucket
    future = relative_buckets(torch.arange(1, 10), bidirectional=False,
                              num_buckets=num_buckets, max_distance=max_distance)
    assert (future == 0).all()


@pytest.mark.parametrize("num_buckets,max_distance", [(32, 128), (8, 16), (16, 100)])
def test_relative_buckets_bidirectional_are_monotone_on_each_side(num_buckets, max_distance):
    distance = torch.arange(0, 4 * max_distance)
    half = num_buckets // 2
    before = relative_buckets(-distance, bidirectional=True, num_buckets=num_buckets,
                              max_distance=max_distance)
    after = relative_buckets(distance[1:], bidirectional=True, num_buckets=num_buckets,
                             max_distance=max_distance)
    assert (before[1:] >= before[:-1]).all() and (after[1:] >= after[:-1]).all()
    assert before.min() == 0 and before.max() == half - 1  # the past: lower half
    assert after.min() == half + 1 and after.max() == num_buckets - 1  # the future: upper half
    # the two sides mirror each other
    torch.testing.assert_close(after - half, before[1:])


def test_relative_bias_has_a_value_per_head_and_pair():
    relative = POSITIONS.build({"name": "relative", "num_buckets": 8, "max_distance": 16},
                               heads=3)
    positions = torch.arange(6)
    bias = relative.bias(positions, positions)
    assert bias.shape == (3, 6, 6)
    # shared along diagonals: it is a function of the offset only
    torch.testing.assert_close(bias[:, 1:, 1:], bias[:, :-1, :-1])


# --- length limits -----------------------------------------------------------------------------

TRAINING_LENGTH = 16


def _tiny(position, **overrides):
    values = dict(vocab_size=32, d_model=16, layers=2, heads=2, position=position,
                  max_len=TRAINING_LENGTH)
    values.update(overrides)
    return build_model(model_config(**values)).eval()


def test_learned_positions_refuse_sequences_beyond_max_len():
    model = _tiny("learned")
    with torch.no_grad():
        model(torch.zeros(1, TRAINING_LENGTH, dtype=torch.long))  # the last position fits
        with pytest.raises(ContextTooLong, match="max_len") as error:
            model(torch.zeros(1, TRAINING_LENGTH + 1, dtype=torch.long))
    assert isinstance(error.value, ConfigError)
    assert error.value.key == "model.max_len"
    assert str(TRAINING_LENGTH) in str(error.value)
    assert model.max_positions == TRAINING_LENGTH


def test_learned_positions_refuse_to_generate_past_max_len():
    model = _tiny("learned")
    state = model.new_state()
    with torch.no_grad():
        model(torch.zeros(1, TRAINING_LENGTH, dtype=torch.long), state=state)
        with pytest.raises(ContextTooLong):
            model(torch.zeros(1, 1, dtype=torch.long), state=state)


@pytest.mark.parametrize("position,arch", combinations("position", "arch"))
def test_at_four_times_the_training_length_positions_extrapolate_or_refuse(position, arch):
    """Every variant either runs far past the length it was built for, or says what it covers
    (`max_positions`) and refuses beyond it by name (a learned table)."""
    model = _tiny(position, arch=arch)
    tokens = torch.randint(0, 32, (2, 4 * TRAINING_LENGTH))

    def forward() -> torch.Tensor:
        return model(tokens, tokens) if arch == "encoder_decoder" else model(tokens)

    with torch.no_grad():
        if model.max_positions is not None:
            assert model.max_positions == TRAINING_LENGTH
            with pytest.raises(ContextTooLong):
                forward()
            return
        logits = forward()
    assert logits.shape == (2, 4 * TRAINING_LENGTH, 32)
    assert torch.isfinite(logits).all()


def test_sinusoidal_waves_have_the_papers_frequencies():
    sinusoidal = POSITIONS.build("sinusoidal", d_model=8, scale=1.0)
    positions = torch.arange(5)
    waves = sinusoidal.embed(torch.zeros(5, 8), positions)
    for i in range(4):
        angle = positions.double() / 10000 ** (2 * i / 8)
        torch.testing.assert_close(waves[:, 2 * i].double(), angle.sin(), atol=1e-6, rtol=0)
        torch.testing.assert_close(waves[:, 2 * i + 1].double(), angle.cos(), atol=1e-6, rtol=0)
    default = POSITIONS.build("sinusoidal", d_model=8, init_std=0.02)
    assert math.isclose(default.scale, 0.02 * math.sqrt(2))


@pytest.mark.parametrize("position", names("position"))
def test_forward_is_one_graph_without_syncs(position):
    """No variant reads a tensor back to size or check its tables (the model announces the
    length as an int, `reserve`): a GPU never waits for it, and torch.compile captures the
    whole forward as one graph."""
    import torch._dynamo as dynamo

    model = build_model(model_config(vocab_size=20, d_model=16, layers=2, heads=2,
                                     position=position, max_len=32))
    explained = dynamo.explain(model)(torch.randint(0, 20, (2, 12)))
    dynamo.reset()
    assert explained.graph_break_count == 0, [str(b.reason)[:200]
                                               for b in explained.break_reasons]
