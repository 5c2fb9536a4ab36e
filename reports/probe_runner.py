"""Running every probe on a run's final checkpoint, without ever failing the report.

Loading goes through `tzoo.recipes.checkpoints.load_run`, imported lazily: the report must
still build when that module, a checkpoint, or a probe is broken, and then it says why.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .probes import (
    ProbeResult,
    attention_maps,
    contextual_drift,
    induction_scores,
    nearest_neighbours,
    position_decoding,
    position_similarity,
    sample_tokens,
)
from .runs import Run

Loader = Callable[[Path], Any]


def safe_name(text: str) -> str:
    """A file-system-safe folder name for a variant ('model.position=rotary' stays readable)."""
    return re.sub(r"[^A-Za-z0-9._=-]+", "_", text).strip("_") or "run"


def default_loader() -> Loader:
    """`tzoo.recipes.checkpoints.load_run`; ImportError propagates to the caller to report."""
    from tzoo.recipes.checkpoints import load_run

    return load_run


def training_context(config: dict[str, Any] | None) -> int | None:
    """The LM training context (data.context) from a run's config, if it has one."""
    value = ((config or {}).get("data") or {}).get("context")
    return value if isinstance(value, int) and value > 1 else None


def probe_model(model: Any, tokenizer: Any | None, out_dir: Path, *,
                context: int | None = None) -> list[ProbeResult]:
    """All probes on one model; a probe that crashes becomes a skipped result with the error.

    `context` (the training context) caps the probe sequences so that every variant is probed
    at lengths it was trained on, and their numbers stay comparable.
    """
    vocab = getattr(tokenizer, "vocab_size", None) if tokenizer is not None else None
    cap = context or 64
    probes: list[tuple[str, str, Callable[[], ProbeResult]]] = [
        ("attention_maps", "Attention maps",
         lambda: attention_maps(model, sample_tokens(model, tokenizer, min(24, cap)), out_dir,
                                tokenizer)),
        ("position_similarity", "Learned position embeddings",
         lambda: position_similarity(model, out_dir)),
        ("position_decoding", "Positions the model can read out",
         lambda: position_decoding(model, out_dir, length=min(64, cap))),
        ("induction", "Induction heads",
         lambda: induction_scores(model, out_dir, vocab_size=vocab, half=min(32, cap // 2))),
        ("neighbours", "Nearest neighbours of token embeddings",
         lambda: nearest_neighbours(model, tokenizer)),
        ("contextual_drift", "Contextual drift of one token",
         lambda: contextual_drift(model, out_dir, tokenizer=tokenizer, length=min(16, cap))),
    ]
    results = []
    for name, title, probe in probes:
        try:
            results.append(probe())
        except Exception as exc:  # a probe bug must cost one section, not the whole report
            results.append(ProbeResult.skip(name, title,
                                            f"probe failed: {type(exc).__name__}: {exc}"))
    return results


def probe_run(run: Run, out_dir: Path, loader: Loader | None = None) -> list[ProbeResult]:
    """Load `run`'s final checkpoint and probe it; figures go to `out_dir`.

    Returns a single skipped result (name 'load') when nothing could be probed.
    """
    if run.checkpoint is None:
        return [ProbeResult.skip("load", "Probes", "probe skipped: the run has no checkpoint")]
    try:
        load = loader or default_loader()
    except ImportError as exc:
        return [ProbeResult.skip("load", "Probes",
                                 f"probe skipped: cannot load checkpoints ({exc})")]
    try:
        loaded = load(run.path)
        model = loaded.model
        model.eval()
    except Exception as exc:  # corrupt or incompatible checkpoint
        return [ProbeResult.skip("load", "Probes",
                                 f"probe skipped: loading failed ({type(exc).__name__}: {exc})")]
    config = getattr(loaded, "config", None) or run.config
    return probe_model(model, getattr(loaded, "tokenizer", None), out_dir,
                       context=training_context(config if isinstance(config, dict) else None))
