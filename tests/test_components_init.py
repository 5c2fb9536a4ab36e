"""The initialisation family (`model.init`): every variant's weights have the statistics its
source defines, per kind of weight; GPT-2's, the default, is the very rule the suite always had;
the embedding scale and DeepNorm's residual scale reach the forward pass; DeepNorm's combination
rules refuse what it was not made for.

The expected statistics are written out here from the papers, independently of
components/initialisation.py; only the addressing of weights (`weight_parts`: which rows of which
matrix are a query projection) is the module's, and is itself checked to cover every weight."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn
from variants import model_config, names

from tzoo.components import ConfigError, ModelConfig, build_model
from tzoo.components.initialisation import weight_parts
from tzoo.components.sublayer import Residual

pytestmark = pytest.mark.usefixtures("one_thread")

UNIT_GPT2 = {"name": "gpt2", "unit_embeddings": True}
INITS = [*names("init"), UNIT_GPT2]
#: two models that hold every kind of weight between them: learned positions (a table added
#: to the stream), an untied output layer, plain and gated FFNs, self- and cross-attention,
#: grouped key/value heads and a relative-position bias table
SIZES = dict(vocab_size=300, d_model=64, heads=4, max_len=64, ffn_mult=4.0)
MODELS = {
    "decoder": dict(arch="decoder", layers=3, position="learned", ffn="gelu", output="untied"),
    "encoder_decoder": dict(arch="encoder_decoder", layers=2, decoder_layers=3,
                            position="relative", ffn="swiglu", output="tied",
                            attention={"name": "gqa", "kv_heads": 2}),
}


def _id(init) -> str:
    return init if isinstance(init, str) else "gpt2+unit_embeddings"


def _build(init, model: str, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return build_model(model_config(**SIZES, **MODELS[model], init=init))


def _xavier_std(weight: torch.Tensor, gain: float = 1.0) -> float:
    fan_out, fan_in = weight.shape
    return gain * math.sqrt(2.0 / (fan_in + fan_out))


def _deepnorm_beta(config: ModelConfig, stack: str) -> float:
    """Wang et al. 2022: β = (8N)^-¼ for one stack; encoder-decoder: encoder 0.87(N⁴M)^-1/16,
    decoder (12M)^-¼."""
    n, m = config.layers, config.decoder_layers or config.layers
    if config.arch == "encoder_decoder":
        return 0.87 * (n**4 * m) ** (-1 / 16) if stack == "encoder" else (12 * m) ** -0.25
    return (8 * n) ** -0.25


def expected(init, config: ModelConfig, part) -> tuple[str, float]:
    """(distribution, std) of one weight part, as the source of `init` defines it."""
    d = config.d_model
    name = init if isinstance(init, str) else "gpt2+unit"
    unit_tables = {"token_embedding": d**-0.5, "position_table": 1.0, "bias_table": d**-0.5}
    if name in ("gpt2", "gpt2+unit"):
        if name == "gpt2+unit" and part.kind in unit_tables:
            return "normal", unit_tables[part.kind]
        sublayers = 2 * config.layers + (3 * (config.decoder_layers or config.layers)
                                         if config.arch == "encoder_decoder" else 0)
        scaled = part.kind in ("attention_out", "ffn_out")
        return "normal", config.init_std / (math.sqrt(sublayers) if scaled else 1.0)
    if part.kind in unit_tables:
        return "normal", unit_tables[part.kind]
    if name == "vaswani":
        return "uniform", _xavier_std(part.weight)
    if name == "small":
        if part.kind in ("query", "key", "value", "attention_out"):
            return "normal", math.sqrt(2 / (5 * d))
        return "normal", _xavier_std(part.weight)
    assert name == "deepnet"
    scaled = part.kind in ("value", "attention_out", "ffn_in", "ffn_out")
    gain = _deepnorm_beta(config, part.stack) if scaled else 1.0
    return "normal", _xavier_std(part.weight, gain)


@pytest.mark.parametrize("model", list(MODELS))
@pytest.mark.parametrize("init", INITS, ids=_id)
def test_weight_statistics_match_the_definition(init, model):
    built = _build(init, model)
    config = built.config
    parts = weight_parts(built)
    kinds = {part.kind for part in parts}
    assert {"token_embedding", "query", "key", "value", "attention_out", "ffn_in",
            "ffn_out"} <= kinds
    for part in parts:
        distribution, std = expected(init, config, part)
        weight = part.weight.double().flatten()
        n = weight.numel()
        # deterministic (seeded), with bounds a wrong definition misses by far: the std is within
        # ~5 standard errors, the mean within 5 standard errors of 0
        assert abs(weight.mean().item()) < 5 * std / math.sqrt(n), part.name
        assert weight.std().item() == pytest.approx(std, rel=5 / math.sqrt(2 * n) + 0.02), \
            (part.name, part.kind)
        bound = std * math.sqrt(3.0)
        if distribution == "uniform":  # bounded at √3·std and filling its range
            assert weight.abs().max().item() <= bound + 1e-7, part.name
            assert weight.abs().max().item() > 0.95 * bound, part.name
        else:  # a normal's tails pass where a uniform's stop
            assert weight.abs().max().item() > 1.2 * bound, part.name
    for module in built.modules():  # biases start at zero, norms at their own values
        if isinstance(module, nn.Linear) and module.bias is not None:
            assert not module.bias.any()
        if isinstance(module, nn.LayerNorm):
            assert (module.weight == 1).all() and not module.bias.any()


@pytest.mark.parametrize("model", list(MODELS))
def test_every_weight_is_addressed_once(model):
    """`weight_parts` covers each matrix row for row, and nothing twice."""
    built = _build("gpt2", model)
    rows: dict[int, int] = {}
    for part in weight_parts(built):
        base = part.weight._base if part.weight._base is not None else part.weight
        rows[base.data_ptr()] = rows.get(base.data_ptr(), 0) + part.weight.shape[0]
    matrices = {p.data_ptr(): p for p in built.parameters() if p.dim() == 2}
    assert set(rows) == set(matrices)
    for pointer, parameter in matrices.items():
        assert rows[pointer] == parameter.shape[0]


@pytest.mark.parametrize("arch", names("arch"))
def test_gpt2_spelled_out_is_the_default_bit_for_bit(arch):
    models = []
    for init in (None, "gpt2", {"name": "gpt2"}, {"name": "gpt2", "unit_embeddings": False}):
        extra = {} if init is None else {"init": init}
        torch.manual_seed(0)
        models.append(build_model(model_config(arch=arch, vocab_size=40, d_model=16, heads=4,
                                               layers=2, max_len=16, **extra)))
    tokens = torch.randint(0, 40, (2, 8), generator=torch.Generator().manual_seed(1))
    default, *spelled = models
    reference = default.state_dict()
    outputs = [m(tokens, tokens) if arch == "encoder_decoder" else m(tokens) for m in models]
    for model, output in zip(spelled, outputs[1:], strict=True):
        state = model.state_dict()
        assert state.keys() == reference.keys()
        assert all(torch.equal(state[k], reference[k]) for k in reference)
        assert torch.equal(output, outputs[0])
    assert default.embedding_scale == 1.0  # read as drawn: no multiplication in the forward


@pytest.mark.parametrize("init", INITS, ids=_id)
def test_embeddings_enter_the_stream_at_the_variants_scale(init):
    model = build_model(model_config(vocab_size=200, d_model=64, heads=4, layers=1,
                                     position="none", init=init)).eval()
    tokens = torch.randint(0, 200, (4, 32), generator=torch.Generator().manual_seed(0))
    _, hidden = model(tokens, return_hidden=True)
    scale = 1.0 if init == "gpt2" else math.sqrt(64)
    assert torch.allclose(hidden[0], model.embedding.weight[tokens] * scale)
    rms = hidden[0].pow(2).mean().sqrt().item()
    assert rms == pytest.approx(0.02 if init == "gpt2" else 1.0, rel=0.1)
    # sinusoids are drawn at the same RMS as the embeddings they are added to
    sinusoidal = build_model(model_config(vocab_size=200, d_model=64, heads=4, layers=1,
                                          position="sinusoidal", init=init))
    assert sinusoidal.position.scale / math.sqrt(2) == pytest.approx(rms, rel=0.1)


@pytest.mark.parametrize(("arch", "layers", "decoder_layers", "alphas"), [
    ("decoder", 3, None, {"decoder": 6**0.25}),
    ("encoder", 4, None, {"encoder": 8**0.25}),
    ("encoder_decoder", 2, 3, {"encoder": 0.81 * (2**4 * 3) ** (1 / 16),
                               "decoder": 9**0.25}),
])
def test_deepnorm_scales_the_residual_stream_by_alpha(arch, layers, decoder_layers, alphas):
    model = build_model(ModelConfig(arch=arch, layers=layers, decoder_layers=decoder_layers,
                                    d_model=16, heads=4, max_len=16, vocab_size=30,
                                    init="deepnet", placement="post"))
    for role, stack in model.named_stacks():
        residuals = [m for m in stack.modules() if isinstance(m, Residual)]
        assert residuals and all(r.stream_scale == pytest.approx(alphas[role])
                                 for r in residuals)
    residual = next(m for m in model.modules() if isinstance(m, Residual))
    x, y = torch.randn(2, 5, 16), torch.randn(2, 5, 16)
    assert torch.allclose(residual(x, y), residual.stream_scale * x + y)
    # every other initialisation leaves the stream as it is
    gpt2 = build_model(ModelConfig(arch=arch, layers=layers, d_model=16, heads=4, max_len=16))
    assert all(m.stream_scale == 1.0 for m in gpt2.modules() if isinstance(m, Residual))


@pytest.mark.parametrize(("field", "value", "says"), [
    ("placement", "pre", "post-LN"),
    ("placement", "sandwich", "post-LN"),
    ("norm", "none", "norm 'none'"),
    ("residual", "none", "residual 'none'"),
])
def test_deepnorm_refuses_what_it_was_not_made_for(field, value, says):
    config = dict(d_model=16, heads=4, layers=2, max_len=16, init="deepnet", placement="post")
    build_model(ModelConfig(**config))  # post-LN with a norm and a residual: fine
    with pytest.raises(ConfigError) as error:
        ModelConfig(**{**config, field: value}).validate()
    assert error.value.key == "model.init"
    assert says in str(error.value) and "gpt2" in str(error.value)  # and what to use instead


def test_unit_embeddings_must_be_a_boolean():
    with pytest.raises(ConfigError) as error:
        ModelConfig(init={"name": "gpt2", "unit_embeddings": "yes"}).validate()
    assert error.value.key == "model.init"
    with pytest.raises(ConfigError, match="'unit_embedding'") as error:
        ModelConfig(init={"name": "gpt2", "unit_embedding": True}).validate()
    assert error.value.key == "model.init"
