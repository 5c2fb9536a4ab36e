"""Training throughput of the zoo's decoder-only model against a monolithic GPT of the same math.

    python -m tzoo.recipes.bench.zoo_vs_gpt              # all six position variants, a few minutes
    python -m tzoo.recipes.bench.zoo_vs_gpt --positions rotary,alibi --repeats 9 --json out.json

Shape (the issue's): vocab 65, context 256, d_model 128, 4 layers, 4 heads, feed-forward 4x,
batch 16, fp32, 2 threads, pre-LN layernorm, GELU, MHA, tied output, dropout 0.

For every position variant (none, sinusoidal, learned, rotary, alibi, relative) the zoo model is
built through the registry (`build_model`) and a monolithic nanoGPT-style model is written out
by hand (`monolithic_gpt.py`) with the same math: a fused qkv Linear,
`F.scaled_dot_product_attention` with `is_causal=True` (or, for ALiBi/relative, the bias merged
with the causal mask as one additive `attn_mask`, as the math requires), rotary applied to q/k,
learned/sinusoidal added to the embeddings. The reference is loaded with the zoo's weights and
its logits and gradients are checked against the zoo's before anything is timed; the parameter
counts must be equal.

A training step is forward + cross-entropy + backward + AdamW step. Zoo and reference steps are
interleaved step by step (ABBA order) in one process; tokens/s are medians over repeats (a repeat
is the mean of `--steps-per-repeat` steps), and the ratio zoo/reference is the median over all
step pairs of reference step time / zoo step time (a noisy shared machine moves both sides of a
pair together; the JSON also holds the ratio of the repeat medians and the best repeats).

MFU follows the PaLM / nanoGPT convention:

    flops_per_token = 6·N + 12·L·d·T

with N the parameters that take part in matmuls (every parameter except lookup-only tables: the
learned position table and the relative-bias table; the tied embedding counts, it is the output
layer), L layers, d = d_model, T = context (the attention term counts the full T×T score and
value matmuls, forward and backward, as nanoGPT does, even though a causal kernel may skip half).
MFU = flops_per_token · tokens/s / peak, with peak the median GFLOP/s of large square fp32
matmuls measured here with the same thread count (the best of sizes 1024, 1536, 2048, measured
before and after the models, the better of the two).

Peak memory: each model trains in a fresh subprocess; the kernel's resident-set high-water mark
(VmHWM) is reset just before training (/proc/self/clear_refs) and read after it. "train peak" is
that high-water mark minus the resident size just before training: activations, gradients,
optimizer state and allocator slack of one training step, measured from the operating system,
not from a Python tracer. ru_maxrss is used where clear_refs is unavailable.
"""

from __future__ import annotations

import argparse
import gc
import json
import resource
import statistics
import subprocess
import sys
import time

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from tzoo.components import ModelConfig, build_model
from tzoo.recipes.bench.flops import matmul_parameters
from tzoo.recipes.bench.monolithic_gpt import GPT, INIT_STD
from tzoo.recipes.bench.timing import matmul_peak_gflops
from tzoo.recipes.resident import reset_high_water_mark, status_kib

VOCAB, CONTEXT, D_MODEL, LAYERS, HEADS, FFN_MULT, BATCH, THREADS = 65, 256, 128, 4, 4, 4, 16, 2
POSITIONS = ("none", "sinusoidal", "learned", "rotary", "alibi", "relative")


# ------------------------------------------------------------------------------------------------
# Models, steps, checks
# ------------------------------------------------------------------------------------------------


def zoo_model(position: str) -> nn.Module:
    return build_model(ModelConfig(
        arch="decoder", vocab_size=VOCAB, d_model=D_MODEL, layers=LAYERS, heads=HEADS,
        attention="mha", position=position, max_len=CONTEXT, norm="layernorm", placement="pre",
        residual="add", ffn="gelu", ffn_mult=FFN_MULT, output="tied", dropout=0.0, bias=True,
        init_std=INIT_STD,
    ))


def reference_model(position: str) -> GPT:
    return GPT(position, vocab=VOCAB, context=CONTEXT, d=D_MODEL, layers=LAYERS, heads=HEADS,
               mult=FFN_MULT)


def optimizer(model: nn.Module) -> torch.optim.Optimizer:
    return torch.optim.AdamW(model.parameters(), lr=3e-4, weight_decay=0.1)


def batches(n: int, seed: int = 0) -> list[tuple[Tensor, Tensor]]:
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n):
        data = torch.randint(0, VOCAB, (BATCH, CONTEXT + 1), generator=g)
        out.append((data[:, :-1].contiguous(), data[:, 1:].contiguous()))
    return out


def train_step(model: nn.Module, opt: torch.optim.Optimizer, x: Tensor, y: Tensor) -> None:
    logits = model(x)
    loss = F.cross_entropy(logits.view(-1, logits.shape[-1]), y.view(-1))
    loss.backward()
    opt.step()
    opt.zero_grad(set_to_none=True)


def flops_per_token(n_matmul: int) -> int:
    return 6 * n_matmul + 12 * LAYERS * D_MODEL * CONTEXT


def check_same_math(position: str) -> float:
    """Load the zoo's weights into the reference; logits and gradients must agree."""
    torch.manual_seed(1234)
    zoo = zoo_model(position)
    ref = reference_model(position)
    n_zoo = sum(p.numel() for p in zoo.parameters())
    n_ref = sum(p.numel() for p in ref.parameters())
    assert n_zoo == n_ref, f"{position}: parameter counts differ: zoo {n_zoo}, reference {n_ref}"
    ref.load_zoo(zoo)
    x, y = batches(1, seed=99)[0]
    diffs = []
    for model in (zoo, ref):
        logits = model(x)
        F.cross_entropy(logits.view(-1, VOCAB), y.view(-1)).backward()
        diffs.append(logits.detach())
    logit_diff = (diffs[0] - diffs[1]).abs().max().item()
    assert logit_diff < 1e-4, f"{position}: logits differ by {logit_diff:g}"
    grad_zoo = zoo.embedding.weight.grad
    grad_ref = ref.wte.weight.grad
    grad_diff = ((grad_zoo - grad_ref).abs().max() / grad_ref.abs().max()).item()
    assert grad_diff < 1e-3, f"{position}: embedding gradients differ by {grad_diff:g} (relative)"
    return logit_diff


# ------------------------------------------------------------------------------------------------
# Timing (one process, interleaved) and memory (one subprocess per model)
# ------------------------------------------------------------------------------------------------


def time_variant(position: str, repeats: int, steps: int, warmup: int) -> dict:
    torch.manual_seed(0)
    zoo = zoo_model(position)
    ref = reference_model(position)
    ref.load_zoo(zoo)  # same starting point, same data: the two trajectories stay close
    models = {"zoo": (zoo, optimizer(zoo)), "reference": (ref, optimizer(ref))}
    data = batches(4)
    for model, opt in models.values():
        for i in range(warmup):
            train_step(model, opt, *data[i % len(data)])
    seconds: dict[str, list[float]] = {"zoo": [], "reference": []}
    pair_ratios: list[float] = []  # reference step time / zoo step time, one per step pair
    for r in range(repeats):
        gc.collect()
        spent = {"zoo": 0.0, "reference": 0.0}
        for i in range(steps):
            # Alternate step by step (ABBA): both sides of a pair see the same machine load.
            order = ("zoo", "reference") if (r + i) % 2 == 0 else ("reference", "zoo")
            step = {}
            for name in order:
                model, opt = models[name]
                start = time.perf_counter()
                train_step(model, opt, *data[i % len(data)])
                step[name] = time.perf_counter() - start
                spent[name] += step[name]
            pair_ratios.append(step["reference"] / step["zoo"])
        for name, total in spent.items():
            seconds[name].append(total / steps)
    tokens = BATCH * CONTEXT
    repeat_ratios = [r / z for z, r in zip(seconds["zoo"], seconds["reference"], strict=True)]
    return {
        "zoo_tokens_per_s": tokens / statistics.median(seconds["zoo"]),
        "reference_tokens_per_s": tokens / statistics.median(seconds["reference"]),
        # the headline ratio: median over all interleaved step pairs
        "ratio": statistics.median(pair_ratios),
        "ratio_of_median_repeats": statistics.median(repeat_ratios),
        # best repeat of each side: what an unloaded machine gives
        "zoo_best_tokens_per_s": tokens / min(seconds["zoo"]),
        "reference_best_tokens_per_s": tokens / min(seconds["reference"]),
        "pair_ratios": pair_ratios,
        "zoo_step_s": seconds["zoo"],
        "reference_step_s": seconds["reference"],
        "params": sum(p.numel() for p in zoo.parameters()),
        "matmul_params": matmul_parameters(zoo),
    }


def memory_probe(position: str, which: str, steps: int) -> dict:
    """Run in a fresh process: peak resident memory of `steps` training steps."""
    torch.set_num_threads(THREADS)
    torch.manual_seed(0)
    model = zoo_model(position) if which == "zoo" else reference_model(position)
    opt = optimizer(model)
    data = batches(2)
    gc.collect()
    before = status_kib("VmRSS")
    # reset the high-water mark to the current resident size
    method = "VmHWM" if reset_high_water_mark() else "ru_maxrss"
    for i in range(steps):
        train_step(model, opt, *data[i % 2])
    peak = status_kib("VmHWM") if method == "VmHWM" else None
    if peak is None:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"before_mib": (before or 0) / 1024, "peak_mib": peak / 1024,
            "train_peak_mib": (peak - (before or 0)) / 1024, "method": method}


def measure_memory(position: str, which: str, steps: int = 3) -> dict:
    command = [sys.executable, "-m", "tzoo.recipes.bench.zoo_vs_gpt", "--memory-probe",
               f"{position}:{which}", "--steps-per-repeat", str(steps)]
    result = subprocess.run(command, capture_output=True, text=True, check=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


# ------------------------------------------------------------------------------------------------
# Report
# ------------------------------------------------------------------------------------------------


def markdown(results: dict) -> str:
    peak = results["matmul_peak"]
    lines = [
        f"Shape: vocab {VOCAB}, context {CONTEXT}, d_model {D_MODEL}, {LAYERS} layers, "
        f"{HEADS} heads, FFN {FFN_MULT}x, batch {BATCH}, fp32, {THREADS} threads; "
        f"{results['settings']['repeats']} repeats x {results['settings']['steps_per_repeat']} "
        "steps (forward + backward + AdamW), interleaved, medians.",
        "",
        f"fp32 matmul peak: {peak['gflops']:.1f} GFLOP/s (best of the runs before and after the "
        "models; median per size: "
        + ", ".join(f"{n}: {g:.1f}" for n, g in peak["per_size"].items()) + "; runs: "
        + ", ".join(f"{g:.1f}" for g in peak["measurements"]) + ")",
        "",
        "MFU = (6·N + 12·L·d·T) · tokens/s / peak, N = matmul parameters (lookup tables "
        "excluded).",
        "",
        "Ratio: median over interleaved step pairs; best-repeat ratio: zoo's best repeat / the "
        "reference's best repeat. Train peak: resident-set high-water mark of training minus the "
        "resident size before it, one fresh subprocess per model.",
        "",
        "| position | params | zoo tok/s | ref tok/s | ratio zoo/ref | best-repeat ratio "
        "| zoo MFU | ref MFU | zoo train peak MiB | ref train peak MiB |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for position, row in results["variants"].items():
        memory = row.get("memory", {})
        zm = memory.get("zoo", {}).get("train_peak_mib", float("nan"))
        rm = memory.get("reference", {}).get("train_peak_mib", float("nan"))
        lines.append(
            f"| {position} | {row['params']:,} | {row['zoo_tokens_per_s']:,.0f} "
            f"| {row['reference_tokens_per_s']:,.0f} | {row['ratio']:.3f} "
            f"| {row['zoo_best_tokens_per_s'] / row['reference_best_tokens_per_s']:.3f} "
            f"| {100 * row['zoo_mfu']:.1f}% | {100 * row['reference_mfu']:.1f}% "
            f"| {zm:.0f} | {rm:.0f} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tzoo.recipes.bench.zoo_vs_gpt",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--positions", default="all",
                        help="'all' or a comma-separated list of: " + ", ".join(POSITIONS))
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--steps-per-repeat", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--no-memory", action="store_true", help="skip the memory subprocesses")
    parser.add_argument("--json", metavar="OUT")
    parser.add_argument("--markdown", metavar="OUT")
    parser.add_argument("--memory-probe", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.memory_probe:
        position, which = args.memory_probe.split(":")
        print(json.dumps(memory_probe(position, which, args.steps_per_repeat)))
        return 0

    torch.set_num_threads(THREADS)
    positions = POSITIONS if args.positions == "all" else tuple(args.positions.split(","))
    unknown = [p for p in positions if p not in POSITIONS]
    if unknown:
        parser.error(f"unknown position variant(s): {', '.join(unknown)}")

    # The peak is measured before and after the models (a loaded machine lowers it; the best of
    # the two is the machine's capability, so MFU is not inflated by a contended measurement).
    peaks = [matmul_peak_gflops()]
    print(f"fp32 matmul peak ({THREADS} threads): {peaks[0]['gflops']:.1f} GFLOP/s", flush=True)
    results: dict = {
        "settings": {"repeats": args.repeats, "steps_per_repeat": args.steps_per_repeat,
                     "warmup": args.warmup, "threads": THREADS, "torch": torch.__version__,
                     "shape": {"vocab": VOCAB, "context": CONTEXT, "d_model": D_MODEL,
                               "layers": LAYERS, "heads": HEADS, "ffn_mult": FFN_MULT,
                               "batch": BATCH}},
        "mfu_formula": "(6*N_matmul + 12*L*d*T) * tokens_per_s / peak_flops",
        "variants": {},
    }
    print(f"{'position':<11} {'zoo tok/s':>10} {'ref tok/s':>10} {'ratio':>6}", flush=True)
    for position in positions:
        max_diff = check_same_math(position)
        row = time_variant(position, args.repeats, args.steps_per_repeat, args.warmup)
        row["max_logit_diff"] = max_diff
        row["flops_per_token"] = flops_per_token(row["matmul_params"])
        if not args.no_memory:
            row["memory"] = {side: measure_memory(position, side) for side in ("zoo", "reference")}
        results["variants"][position] = row
        print(f"{position:<11} {row['zoo_tokens_per_s']:>10,.0f} "
              f"{row['reference_tokens_per_s']:>10,.0f} {row['ratio']:>6.3f}", flush=True)
    peaks.append(matmul_peak_gflops())
    peak = max(peaks, key=lambda p: p["gflops"])
    results["matmul_peak"] = {**peak, "measurements": [p["gflops"] for p in peaks]}
    for row in results["variants"].values():
        for side in ("zoo", "reference"):
            row[f"{side}_mfu"] = (row["flops_per_token"] * row[f"{side}_tokens_per_s"]
                                  / (peak["gflops"] * 1e9))
    text = markdown(results)
    print()
    print(text)
    if args.json:
        with open(args.json, "w") as out:
            json.dump(results, out, indent=2)
    if args.markdown:
        with open(args.markdown, "w") as out:
            out.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
