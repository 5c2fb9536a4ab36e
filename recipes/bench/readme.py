"""Markdown for each bench result, and `reports/bench/README.md` assembled from whichever
results exist there (each mode writes its own JSON, so the modes can run separately)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from . import tables
from .tables import span

VARIANT_COLUMNS = [
    ("variant", "variant"), ("params", "params"), ("flops_per_token", "FLOPs/token"),
    ("train_tokens_per_s", "train tok/s"), ("mfu", "MFU"), ("prefill_tokens_per_s",
                                                              "prefill tok/s"),
    ("decode_ms_per_step", "decode ms/step"), ("peak_mem_mb", "peak MB"),
]


def variants_markdown(doc: dict[str, Any]) -> str:
    rows = []
    for row in doc["rows"]:
        detail = doc["details"][row["variant"]]
        rows.append([row["variant"], row["params"], row["flops_per_token"],
                     span(detail["train_tokens_per_s"]), span(detail["mfu"]),
                     span(detail["prefill_tokens_per_s"]), span(detail["decode_ms_per_step"]),
                     row["peak_mem_mb"]])
    peak = doc["machine"]["matmul_peak"]
    settings = doc["settings"]
    return "\n\n".join([
        f"### Variants of `{doc['experiment']}`",
        f"Median (min–max) over {settings['repeats']} interleaved rounds of "
        f"{settings['steps_per_round']} steps; {doc['machine']['threads']} threads; fp32 matmul "
        f"peak {peak['gflops']:.1f} GFLOP/s. Data: {settings['data']}.",
        tables.markdown([h for _, h in VARIANT_COLUMNS], rows),
    ])


def scaling_markdown(doc: dict[str, Any]) -> str:
    parts = ["### Scaling", f"Tokens per step held at {doc['tokens_per_step']} (batch = tokens / "
             "context, at least 1). Training step ms, median (min–max); peak MB."]
    for axis, label in (("context", "context"), ("depth", "layers")):
        variants = list(doc[axis])
        keys = list(next(iter(doc[axis].values())))
        rows = []
        for key in keys:
            row: list[Any] = [key]
            for v in variants:
                point = doc[axis][v][key]
                row += [span(point["step_ms"]), point["peak_mem_mb"]]
            rows.append(row)
        headers = [label] + [f"{h} {v}" for v in variants for h in ("ms", "MB")]
        parts.append(tables.markdown(headers, rows))
        if axis == "context" and len(keys) >= 2:
            first, last = keys[0], keys[-1]
            growth = []
            for v in variants:
                ratio = (doc[axis][v][last]["us_per_token"]["median"]
                         / doc[axis][v][first]["us_per_token"]["median"])
                growth.append(f"{v}: ×{ratio:.2f}")
            parts.append(f"Training time per token, context {first} → {last} (1.0 = no "
                         f"quadratic cost): {', '.join(growth)}.")
    kv = doc["kv_cache"]
    parts.append("KV cache per token (fp32): analytic 2·layers·kv_heads·head_dim·4 bytes vs "
                 "measured from the DecodingState after a prefill.")
    parts.append(tables.markdown(
        ["attention", "kv_heads", "analytic B/token", "measured B/token", "allocated B/token",
         "vs MHA"],
        [[r["attention"], r["kv_heads"], r["analytic_bytes_per_token"],
          r["measured_bytes_per_token"], r["allocated_bytes_per_token"],
          f"{r['measured_bytes_per_token'] / kv[0]['measured_bytes_per_token']:.2f}"]
         for r in kv]))
    return "\n\n".join(parts)


def generation_markdown(doc: dict[str, Any]) -> str:
    parts = ["### Generation"]
    decode = doc.get("decode")
    if decode:
        marks = list(decode["latency_ms"]["cached"])
        rows = [[name] + [span(decode["latency_ms"][name][m]) for m in marks]
                for name in decode["latency_ms"]]
        parts += [f"Per-token decode latency (ms, median of the 16 steps ending at token n) with "
                  f"and without the KV cache, batch 1, {decode['params']:,} parameters.",
                  tables.markdown(["n =", *marks], rows),
                  f"Generating {decode['tokens']} tokens with `generate()`: cached "
                  f"{span(decode['generate_s']['cached'])} s, uncached "
                  f"{span(decode['generate_s']['uncached'])} s: **{span(decode['speedup_total'])}"
                  f"× faster cached** (per token at n={decode['tokens']}: "
                  f"{span(decode['speedup_at_end'])}×). Cached latency at n={decode['tokens']} "
                  f"/ at n={decode['flatness_from']}: {span(decode['cached_flatness'])}."]
    chat = doc.get("chat")
    if chat:
        names = list(chat["per_turn_ms"])
        rows = [[t + 1, chat["transcript_tokens"][t]] + [span(chat["per_turn_ms"][n][t])
                                                          for n in names]
                for t in range(chat["turns"])]
        parts += [f"Chat: cost of each turn (ms) as the transcript grows; decoder "
                  f"{chat['params']['decoder']:,} params, encoder-decoder "
                  f"{chat['params']['encoder_decoder']:,}.",
                  tables.markdown(["turn", "transcript tokens", *names], rows),
                  "Whole chat vs the cached decoder: " + ", ".join(
                      f"{n}: {span(chat['total_vs_cached'][n])}×" for n in names) + "."]
    return "\n\n".join(parts)


def overhead_markdown(doc: dict[str, Any]) -> str:
    size = doc["size"]
    rows = [["runner (Lightning Trainer)", span(doc["runner_step_ms"]),
             doc["train_tokens_per_s"]["runner"]],
            ["bare PyTorch loop", span(doc["bare_step_ms"]), doc["train_tokens_per_s"]["bare"]]]
    compiled = doc["compile"]
    if compiled.get("ok"):
        rows.append(["bare loop, torch.compile", span(compiled["step_ms"]), None])
    per_step = doc.get("runner_over_bare_per_step")
    lines = [
        "### Suite overhead",
        f"Size: {', '.join(f'{k} {v}' for k, v in size.items())}; {doc['repeats']} fits of "
        f"{doc['steps_per_round']} runner steps, each runner step followed by one bare-loop "
        f"step ({doc.get('pairs', '?')} pairs).",
        tables.markdown(["loop", "step ms", "tokens/s"], rows),
        f"Runner / bare, wall clock: **{span(doc['runner_over_bare'])}** (overhead "
        f"{span(doc['overhead_pct'])} % of the bare step; median per-step ratio "
        f"{span(per_step) if per_step else '—'}); process CPU time: **"
        f"{span(doc['runner_over_bare_cpu'])}**. Data loading: "
        f"{span(doc['data_ms'])} ms per step = **{span(doc['data_pct_of_step'])} %** of the step.",
    ]
    if doc.get("runner_startup_ms"):
        lines.append("Once per run, not per step: from `trainer.fit()` to the second batch "
                     "(Lightning's set-up and the first step) "
                     f"{span(doc['runner_startup_ms'])} ms.")
    if compiled.get("requested"):
        if compiled.get("ok"):
            lines.append(f"torch.compile: compile + first two steps {compiled['compile_s']:.1f} s;"
                         f" eager / compiled step time {span(compiled['eager_over_compiled'])}×.")
        else:
            lines.append(f"torch.compile failed here: `{compiled['error']}`.")
    return "\n\n".join(lines)


def gradients_markdown(doc: dict[str, Any]) -> str:
    settings = doc["settings"]
    variants = doc["variants"]
    longest = max((result["blocks"] for result in variants.values()), key=len)
    last = settings["steps"]

    def table(step: int) -> str:
        rows = []
        for name, result in variants.items():
            norms = result["block_grad_norm"][step]
            rows.append([name, *norms, *[None] * (len(longest) - len(norms)),
                         norms[-1] / norms[0] if norms[0] else None])
        return tables.markdown(["variant", *longest, "last / first"], rows)

    return "\n\n".join([
        "### Gradient profile",
        f"Gradient norm of each block's parameters (L2, before clipping) on "
        f"{settings['tokens']} tokens, batch {settings['batch_size']} × context "
        f"{settings['context']}, seed {settings['seed']} (Xiong et al. 2020, Fig. 3). "
        "At initialisation:",
        table(0),
        f"After {last} updates (the run's own optimizer and schedule):",
        table(last),
        "Figure: `gradient_profile.png`; every step in `gradients.json`.",
    ])


SECTIONS = (("variants.json", variants_markdown), ("overhead.json", overhead_markdown),
            ("generation.json", generation_markdown), ("scaling.json", scaling_markdown),
            ("gradients.json", gradients_markdown))


def write_readme(folder: Path) -> Path:
    """README.md from every result JSON and PNG present in `folder`."""
    parts = ["# Benchmarks", "Generated by `tzoo bench` (recipes/bench); do not edit by hand. "
             "Timings come from a shared, noisy 2-core machine: read ratios measured within one "
             "process (interleaved rounds), not absolute numbers."]
    for name, render in SECTIONS:
        path = folder / name
        if path.is_file():
            doc = json.loads(path.read_text())
            if doc.get("command"):
                parts.append(f"`{doc['command']}`")
            parts.append(render(doc))
    if (folder / "zoo_vs_gpt.md").is_file():
        # Written by the standalone yardstick beside `tzoo bench`, which has no experiment file.
        parts.append("### The zoo against a monolithic GPT\n\n[zoo_vs_gpt.md](zoo_vs_gpt.md), "
                     "written by `python -m tzoo.recipes.bench.zoo_vs_gpt --json "
                     f"{folder / 'zoo_vs_gpt.json'} --markdown {folder / 'zoo_vs_gpt.md'}`: "
                     "training tokens/s, MFU and memory of the registry-built decoder and a "
                     "hand-written GPT of the same math.")
    if (folder / "peer.md").is_file():
        # Written by the wrapper around the shared peer harness (nanoGPT's own model).
        parts.append("### The zoo against nanoGPT\n\n[peer.md](peer.md), written by "
                     "`python -m tzoo.recipes.bench.peer` (the shared harness "
                     "../shared/bench/peer_bench.py, once per shape): tokens/s, MFU and memory "
                     "of every position variant against karpathy/nanoGPT's `GPT`.")
    images = sorted(p.name for p in folder.glob("*.png"))
    if images:
        parts.append("### Plots\n\n" + "\n".join(f"![{n}]({n})" for n in images))
    readme = folder / "README.md"
    readme.write_text("\n\n".join(parts) + "\n")
    return readme
