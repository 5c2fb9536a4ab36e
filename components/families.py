"""The component families. Each is a `Registry`; the variants register themselves in their files."""

from .registry import new_registry

ARCHITECTURES = new_registry("architectures", "how the blocks are assembled into a model")
POSITIONS = new_registry("positions", "how the model knows where a token is")
ATTENTION = new_registry("attention", "how keys and values are shared across heads")
MASKS = new_registry("masks", "which positions a query may attend to")
NORMS = new_registry("norms", "the normalisation layer")
PLACEMENTS = new_registry("placements", "where the norm sits around a sublayer")
RESIDUALS = new_registry("residuals", "how a sublayer's output joins the stream")
FFNS = new_registry("ffn", "the position-wise feed-forward sublayer")
OUTPUTS = new_registry("outputs", "the layer that turns states into logits")
