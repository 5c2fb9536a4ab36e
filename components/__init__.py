"""The component zoo: registered variants of every transformer part, and the model assembly.

    from tzoo.components import ModelConfig, build_model, list_variants
    model = build_model(ModelConfig(position="rotary", norm="rmsnorm", ffn="swiglu"))
"""

from . import (  # noqa: F401  (register)
    attention,
    ffn,
    initialisation,
    masks,
    norms,
    outputs,
    positions,
    sublayer,
)
from .config import ModelConfig
from .errors import ConfigError
from .families import (
    ARCHITECTURES,
    ATTENTION,
    FFNS,
    INITS,
    MASKS,
    NORMS,
    OUTPUTS,
    PLACEMENTS,
    POSITIONS,
    RESIDUALS,
)
from .generation import beam_search, generate
from .interventions import ablate, intervene, logit_lens, patch, points
from .model import DecodingState, EncoderDecoder, LanguageModel, build_model
from .positions import ContextTooLong
from .registry import REGISTRIES, Registry, list_variants, load_plugins

__all__ = [
    "ARCHITECTURES",
    "ATTENTION",
    "FFNS",
    "INITS",
    "MASKS",
    "NORMS",
    "OUTPUTS",
    "PLACEMENTS",
    "POSITIONS",
    "REGISTRIES",
    "RESIDUALS",
    "ConfigError",
    "ContextTooLong",
    "DecodingState",
    "EncoderDecoder",
    "LanguageModel",
    "ModelConfig",
    "Registry",
    "ablate",
    "beam_search",
    "build_model",
    "generate",
    "intervene",
    "list_variants",
    "load_plugins",
    "logit_lens",
    "patch",
    "points",
]
