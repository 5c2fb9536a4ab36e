"""The variants table: what every variant of an experiment costs, without training it.

For each variant (first seed only): build the run's real task and batches (see subjects.py),
warm up, then measure round-robin over variants for `repeats` rounds:

- training tokens/s: `steps` full steps (forward, backward, clipping, AdamW, schedule) per
  round, tokens = what the model reads (batch_tokens);
- prefill tokens/s: one eval-mode pass over a prompt (and source) of random tokens, filling
  the key/value cache;
- decode: per-step latency of single-token cached steps after that prompt; tokens/s = batch /
  step latency;
- FLOPs per token: counted for one forward + backward (flops.py); MFU = FLOPs/token ×
  tokens/s ÷ the measured fp32 matmul peak (timing.py), per round, then the median;
- peak memory: see memory.py (one measured step after timing, plus parameters and AdamW state).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import torch

from tzoo.recipes.experiment import Experiment

from .flops import count_flops, matmul_parameters
from .memory import step_peak_bytes, tensor_bytes
from .subjects import Inference, Subject, build_subject, can_decode, inference_shape
from .timing import Stat, matmul_peak_gflops, round_robin

MB = 2**20


def _apply_threads(config: dict[str, Any]) -> None:
    threads = config["train"].get("threads")
    if threads:
        torch.set_num_threads(int(threads))


def _measure_round(subject: Subject, inference: Inference, steps: int) -> dict[str, float]:
    """One round for one variant: seconds per training step, per prefill, per decode step."""
    start = time.perf_counter()
    for _ in range(steps):
        subject.train_step()
    train = (time.perf_counter() - start) / steps
    start = time.perf_counter()
    state = inference.prefill()
    prefill = time.perf_counter() - start
    decode = float("nan")
    if state is not None and inference.shape.decode:
        start = time.perf_counter()
        inference.decode(state)
        decode = (time.perf_counter() - start) / inference.shape.decode
    return {"train_s": train, "prefill_s": prefill, "decode_s": decode}


def bench_variants(experiment: Experiment, *, repeats: int = 5, steps: int = 3, warmup: int = 2,
                   peak_sizes: tuple[int, ...] = (1024, 1536, 2048),
                   echo: Callable[[str], None] = print) -> dict[str, Any]:
    """Measure every variant; return the bench document (see cli.py for its format)."""
    seed = experiment.seeds[0]
    specs = [run for run in experiment.plan() if run.seed == seed]
    _apply_threads(specs[0].config)
    echo(f"measuring the fp32 matmul peak ({torch.get_num_threads()} threads) ...")
    peak = matmul_peak_gflops(peak_sizes)
    subjects: dict[str, Subject] = {}
    inference: dict[str, Inference] = {}
    flops: dict[str, float] = {}
    for spec in specs:
        name = spec.variant_name
        echo(f"building {name} ...")
        subject = build_subject(name, spec.config, seed)
        for _ in range(warmup):
            subject.train_step()
        flops[name] = count_flops(subject.forward_backward) / subject.tokens_per_batch[0]
        shape = inference_shape(subject)
        inference[name] = Inference(subject.model, shape)
        state = inference[name].prefill()  # warm the inference path too
        if state is not None and can_decode(subject.model):
            inference[name].decode(state)
        subjects[name] = subject
    echo(f"timing {len(subjects)} variants round-robin, {repeats} rounds of {steps} steps ...")
    rounds = round_robin(
        {name: (lambda s=s: _measure_round(s, inference[s.name], steps))
         for name, s in subjects.items()},
        repeats,
    )
    rows, details = [], {}
    for name, subject in subjects.items():
        measured = rounds[name]
        shape = inference[name].shape
        train_tps = [subject.mean_tokens / r["train_s"] for r in measured]
        peak_flops = peak["gflops"] * 1e9
        stats = {
            "train_tokens_per_s": Stat.of(train_tps),
            "train_step_ms": Stat.of([1e3 * r["train_s"] for r in measured]),
            "mfu": Stat.of([flops[name] * t / peak_flops for t in train_tps]),
            "prefill_tokens_per_s": Stat.of(
                [inference[name].prefill_tokens / r["prefill_s"] for r in measured]),
            "decode_ms_per_step": Stat.of([1e3 * r["decode_s"] for r in measured]),
            "decode_tokens_per_s": Stat.of([shape.batch / r["decode_s"] for r in measured]),
        }
        step_bytes = step_peak_bytes(subject.train_step)
        static = tensor_bytes(subject.model, subject.optimizer)
        model = subject.model
        row: dict[str, Any] = {
            "variant": name,
            "params": model.num_parameters(),
            "flops_per_token": flops[name],
            "train_tokens_per_s": stats["train_tokens_per_s"].median,
            "prefill_tokens_per_s": stats["prefill_tokens_per_s"].median,
            "decode_tokens_per_s": _finite(stats["decode_tokens_per_s"].median),
            "decode_ms_per_step": _finite(stats["decode_ms_per_step"].median),
            "peak_mem_mb": None if step_bytes is None else (step_bytes + static) / MB,
            "mfu": stats["mfu"].median,
        }
        rows.append(row)
        details[name] = {
            **{key: stat.to_dict() for key, stat in stats.items()},
            "matmul_params": matmul_parameters(model),
            "step_peak_mb": None if step_bytes is None else step_bytes / MB,
            "params_and_optimizer_mb": static / MB,
            "tokens_per_step": subject.mean_tokens,
            "inference_shape": vars(shape),
        }
    return {
        "experiment": experiment.name,
        "rows": rows,
        "details": details,
        "machine": {"matmul_peak": peak, "threads": torch.get_num_threads(),
                    "torch": torch.__version__},
        "settings": {"repeats": repeats, "steps_per_round": steps, "warmup_steps": warmup,
                     "seed": seed, "data": "real training batches (prepare_data); inference on "
                     "random token ids of the training shape"},
    }


def _finite(value: float) -> float | None:
    return value if value == value and value not in (float("inf"), float("-inf")) else None
