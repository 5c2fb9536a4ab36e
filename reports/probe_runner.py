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
    ordinary_ids,
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


def repeated_inputs(config: dict[str, Any] | None, model: Any) -> Any | None:
    """The inputs of the run's first validation batch when its data repeats itself
    (`eval.repeat_loss`, which splits `val/loss_repeat` off), read through the run's own
    validation path (`recipes.validation.Validation`, as the interventions are); else None."""
    if not ((config or {}).get("eval") or {}).get("repeat_loss"):
        return None
    from tzoo.recipes.validation import Validation, run_threads

    with run_threads(config):
        windows = Validation(config, model, max_batches=1).causal_windows()
    return None if windows is None else windows[:, :-1]  # a window's last token is a target


def probe_model(model: Any, tokenizer: Any | None, out_dir: Path, *,
                context: int | None = None,
                run_inputs: Callable[[], Any | None] = lambda: None) -> list[ProbeResult]:
    """All probes on one model; a probe that crashes becomes a skipped result with the error.

    `context` (the training context) caps the probe sequences so that every variant is probed
    at lengths it was trained on, and their numbers stay comparable. `run_inputs` gives the
    run's own sequences where they repeat themselves (`repeated_inputs`), for the induction
    probe; it is called inside that probe, so a run whose data cannot be built costs only it.
    """
    vocab = getattr(tokenizer, "vocab_size", None) if tokenizer is not None else None
    ordinary = ordinary_ids(tokenizer, vocab or int(model.embedding.num_embeddings))
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
         lambda: induction_scores(model, out_dir, run_tokens=run_inputs(),
                                  eos_id=getattr(tokenizer, "eos_id", None), ordinary=ordinary,
                                  half=min(32, cap // 2))),
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
    config = config if isinstance(config, dict) else None
    return probe_model(model, getattr(loaded, "tokenizer", None), out_dir,
                       context=training_context(config),
                       run_inputs=lambda: repeated_inputs(config, model))
