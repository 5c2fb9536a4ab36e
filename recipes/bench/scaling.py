"""Scaling curves: training step time and memory against context length and depth, per variant,
and the key/value cache each attention variant keeps per token.

Context sweep: the tokens per step are held at the experiment's (batch × context), so the batch
shrinks as the context grows: the matmul work per step stays constant and whatever grows is the
attention's T² term (scores and weighted values) and the T×T masks/biases some position variants
materialise. Depth sweep: the experiment's context and batch, 1…8 layers: linear by construction.

KV cache: analytic 2 (keys and values) · layers · kv_heads · head_dim · 4 bytes (fp32) per
token, against what the `DecodingState` caches hold after a prefill (`used`: the filled part;
`allocated`: the doubling buffer, see components/cache.py).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch

from tzoo.components import build_model
from tzoo.components.errors import ConfigError
from tzoo.recipes.data import prepare_data
from tzoo.recipes.experiment import Experiment
from tzoo.recipes.tasks import resolve_model, task_kind

from .memory import step_peak_bytes, tensor_bytes
from .subjects import build_subject, random_tokens, with_overrides
from .timing import Stat, round_robin, seconds_per_call

MB = 2**20


def _sweep(named_configs: dict[Any, dict], repeats: int, steps: int, warmup: int,
           seed: int) -> dict[Any, dict[str, Any]]:
    """Step time (round-robin over the points) and step memory of each configuration."""
    subjects = {key: build_subject(str(key), config, seed, n_batches=2)
                for key, config in named_configs.items()}
    for subject in subjects.values():
        for _ in range(warmup):
            subject.train_step()
    times = round_robin({key: (lambda s=s: seconds_per_call(s.train_step, steps))
                         for key, s in subjects.items()}, repeats)
    out = {}
    for key, subject in subjects.items():
        step_bytes = step_peak_bytes(subject.train_step)
        static = tensor_bytes(subject.model, subject.optimizer)
        out[key] = {
            "step_ms": Stat.of([1e3 * t for t in times[key]]).to_dict(),
            # per token: comparable across points even where the batch had to round
            "us_per_token": Stat.of([1e6 * t / subject.mean_tokens for t in times[key]]).to_dict(),
            "tokens_per_step": subject.mean_tokens,
            "batch": int(subject.config["data"]["batch_size"]),
            "peak_mem_mb": None if step_bytes is None else (step_bytes + static) / MB,
            "step_mem_mb": None if step_bytes is None else step_bytes / MB,
        }
    return out


def _context_config(config: dict, context: int, tokens: int) -> dict:
    max_len = config["model"].get("max_len")
    return with_overrides(config, **{
        "data.context": context, "data.batch_size": max(1, tokens // context),
        "model.max_len": None if max_len is None else max(max_len, context),
        "eval.context_multipliers": [1],
    })


def bench_scaling(experiment: Experiment, *, contexts: Sequence[int] = (128, 256, 512, 1024),
                  depths: Sequence[int] = (1, 2, 4, 8), repeats: int = 3, steps: int = 2,
                  warmup: int = 1, echo: Callable[[str], None] = print) -> dict[str, Any]:
    seed = experiment.seeds[0]
    specs = [run for run in experiment.plan() if run.seed == seed]
    if not task_kind(specs[0].config).windowed:
        raise ConfigError("--scaling sweeps data.context: it needs a language-modelling "
                          "experiment (task.name: lm)")
    result: dict[str, Any] = {"experiment": experiment.name, "context": {}, "depth": {},
                              "settings": {"contexts": list(contexts), "depths": list(depths),
                                           "repeats": repeats, "steps_per_round": steps}}
    for spec in specs:
        config = spec.config
        tokens = int(config["data"]["batch_size"]) * int(config["data"]["context"])
        echo(f"scaling: {spec.variant_name}: contexts {list(contexts)} at {tokens} tokens/step")
        points = _sweep({c: _context_config(config, c, tokens) for c in contexts},
                        repeats, steps, warmup, seed)
        result["context"][spec.variant_name] = {str(c): v for c, v in points.items()}
        echo(f"scaling: {spec.variant_name}: depths {list(depths)}")
        points = _sweep({d: with_overrides(config, **{"model.layers": d}) for d in depths},
                        repeats, steps, warmup, seed)
        result["depth"][spec.variant_name] = {str(d): v for d, v in points.items()}
    result["tokens_per_step"] = tokens
    result["kv_cache"] = kv_cache_bytes(specs[0].config)
    return result


def kv_cache_bytes(config: dict, length: int | None = None) -> list[dict[str, Any]]:
    """Bytes per token of the key/value cache for MHA, GQA and MQA at the config's size."""
    heads = int(config["model"]["heads"])
    layers = int(config["model"]["layers"])
    length = length or int(config["data"]["context"])
    vocab = prepare_data(config).tokenizer.vocab_size
    kinds: list[tuple[str, Any, int]] = [("mha", "mha", heads)]
    if heads >= 4 and heads % 2 == 0:
        kinds.append((f"gqa (kv_heads={heads // 2})", {"name": "gqa", "kv_heads": heads // 2},
                      heads // 2))
    kinds.append(("mqa", "mqa", 1))
    rows = []
    for label, attention, kv_heads in kinds:
        variant = with_overrides(config, **{"model.attention": attention, "model.arch": "decoder",
                                            "model.mask": None,
                                            "model.max_len": max(length, 1)})
        model = build_model(resolve_model(variant, vocab_size=vocab)).eval()
        head_dim = model.config.d_model // model.config.heads
        state = model.new_state()
        with torch.no_grad():
            model(random_tokens(model, 1, length), state=state)
        used = sum(2 * c.keys[:, :, : c.length].numel() * c.keys.element_size()
                   for c in state.caches)
        allocated = sum(c.keys.numel() * c.keys.element_size() + c.values.numel()
                        * c.values.element_size() for c in state.caches)
        rows.append({
            "attention": label, "kv_heads": kv_heads, "layers": layers, "head_dim": head_dim,
            "analytic_bytes_per_token": 2 * layers * kv_heads * head_dim * 4,
            "measured_bytes_per_token": used / length,
            "allocated_bytes_per_token": allocated / length,
            "params": model.num_parameters(), "tokens": length,
        })
    return rows
