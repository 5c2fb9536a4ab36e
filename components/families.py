"""The component families. Each is a `Registry`; the variants register themselves in their files."""

from .registry import Registry, new_registry

ARCHITECTURES = new_registry("architectures", "how the blocks are assembled into a model")
POSITIONS = new_registry("positions", "how the model knows where a token is")
ATTENTION = new_registry("attention", "how keys and values are shared across heads")
MASKS = new_registry("masks", "which positions a query may attend to")
NORMS = new_registry("norms", "the normalisation layer")
PLACEMENTS = new_registry("placements", "where the norm sits around a sublayer")
RESIDUALS = new_registry("residuals", "how a sublayer's output joins the stream")
FFNS = new_registry("ffn", "the position-wise feed-forward sublayer")
OUTPUTS = new_registry("outputs", "the layer that turns states into logits")
INITS = new_registry("init", "how the weights start and at what scale the embeddings enter")

#: the `ModelConfig` field that names a variant of each family
VARIANT_FIELDS: dict[str, Registry] = {
    "arch": ARCHITECTURES,
    "position": POSITIONS,
    "attention": ATTENTION,
    "mask": MASKS,
    "norm": NORMS,
    "placement": PLACEMENTS,
    "residual": RESIDUALS,
    "ffn": FFNS,
    "output": OUTPUTS,
    "init": INITS,
}

#: What model.py passes to the variants of each field itself, so a spec never sets it: config
#: validation leaves these out when it lists a variant's arguments. The model also passes
#: `max_len` to positions, as a default that a spec may override (a learned table's own size),
#: so that one is listed. tests/test_components_registry.py pins this to what model.py passes.
MODEL_SUPPLIED: dict[str, frozenset[str]] = {
    "arch": frozenset({"config"}),
    "position": frozenset({"d_model", "head_dim", "heads", "init_std", "causal"}),
    "attention": frozenset({"d_model", "heads", "dropout", "bias", "cross"}),
    "mask": frozenset(),
    "norm": frozenset({"d_model"}),
    "placement": frozenset({"make_norm", "residual"}),
    "residual": frozenset({"stream_scale"}),
    "ffn": frozenset({"d_model", "mult", "dropout", "bias"}),
    "output": frozenset({"embedding"}),
    "init": frozenset({"config"}),
}
