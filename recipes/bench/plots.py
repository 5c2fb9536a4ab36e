"""PNG figures of the scaling, generation and chat results (matplotlib, Agg: no display)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt


def _save(figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def scaling_plots(result: dict[str, Any], out: Path) -> list[Path]:
    paths = []
    figure, (time_axis, mem_axis) = plt.subplots(1, 2, figsize=(11, 4))
    for variant, points in result["context"].items():
        xs = [int(c) for c in points]
        time_axis.plot(xs, [p["us_per_token"]["median"] for p in points.values()], "o-",
                       label=variant)
        mem_axis.plot(xs, [p["peak_mem_mb"] or 0 for p in points.values()], "o-", label=variant)
    for axis, label in ((time_axis, "training time per token (µs)"),
                        (mem_axis, "peak training memory (MB)")):
        axis.set_xscale("log", base=2)
        axis.set_xlabel(f"context length (~{result['tokens_per_step']} tokens per step)")
        axis.set_ylabel(label)
        axis.grid(alpha=0.3)
    time_axis.legend(fontsize=7)
    paths.append(_save(figure, out / "scaling_context.png"))

    figure, axis = plt.subplots(figsize=(6, 4))
    for variant, points in result["depth"].items():
        axis.plot([int(d) for d in points], [p["step_ms"]["median"] for p in points.values()],
                  "o-", label=variant)
    axis.set_xlabel("layers")
    axis.set_ylabel("training step (ms)")
    axis.grid(alpha=0.3)
    axis.legend(fontsize=7)
    paths.append(_save(figure, out / "scaling_depth.png"))

    figure, axis = plt.subplots(figsize=(6, 4))
    rows = result["kv_cache"]
    xs = range(len(rows))
    axis.bar([x - 0.2 for x in xs], [r["analytic_bytes_per_token"] for r in rows], 0.4,
             label="analytic")
    axis.bar([x + 0.2 for x in xs], [r["measured_bytes_per_token"] for r in rows], 0.4,
             label="measured (DecodingState)")
    axis.set_xticks(list(xs), [r["attention"] for r in rows])
    axis.set_ylabel("KV-cache bytes per token")
    axis.legend()
    paths.append(_save(figure, out / "kv_cache.png"))
    return paths


def generation_plots(decode: dict[str, Any] | None, chat: dict[str, Any] | None,
                     out: Path) -> list[Path]:
    paths = []
    if decode:
        figure, axis = plt.subplots(figsize=(6, 4))
        for name, curve in decode["per_step_ms"].items():
            axis.plot(range(1, len(curve) + 1), curve, label=name, lw=0.8)
        axis.set_yscale("log")
        axis.set_xlabel("sequence length (tokens generated)")
        axis.set_ylabel("decode latency per token (ms)")
        axis.grid(alpha=0.3)
        axis.legend()
        paths.append(_save(figure, out / "decode_latency.png"))
    if chat:
        figure, axis = plt.subplots(figsize=(6, 4))
        turns = range(1, chat["turns"] + 1)
        for name, stats in chat["per_turn_ms"].items():
            axis.plot(turns, [s["median"] for s in stats], "o-", label=name)
        axis.set_xlabel(f"turn ({chat['user_tokens']} user + {chat['reply_tokens']} reply "
                        "tokens each)")
        axis.set_ylabel("cost of the turn (ms)")
        axis.grid(alpha=0.3)
        axis.legend(fontsize=8)
        paths.append(_save(figure, out / "chat_turns.png"))
    return paths


def gradient_plots(doc: dict[str, Any], out: Path) -> list[Path]:
    """`gradient_profile.png`: every variant's gradient norm per block at initialisation in the
    first panel (Xiong et al. 2020, Fig. 3), then one panel per variant with a line per step,
    light to dark, showing how the profile moves over the first updates."""
    variants = doc["variants"]
    panels = 1 + len(variants)
    columns = min(4, panels)
    rows = -(-panels // columns)
    figure, axes = plt.subplots(rows, columns, figsize=(4.2 * columns, 3.4 * rows),
                                squeeze=False, sharey=True)
    flat = list(axes.flat)
    first = flat[0]
    for name, result in variants.items():
        first.plot(range(len(result["blocks"])), result["block_grad_norm"][0], "o-", ms=3,
                   label=name)
    first.set_title("at initialisation", fontsize=9)
    first.legend(fontsize=6, framealpha=0.6)
    colours = plt.get_cmap("viridis_r")
    for axis, (name, result) in zip(flat[1:], variants.items(), strict=False):
        profiles = result["block_grad_norm"]
        for step, norms in enumerate(profiles):
            axis.plot(range(len(norms)), norms, lw=0.9,
                      color=colours(step / max(1, len(profiles) - 1)))
        axis.set_title(f"{name}: steps 0 (light) – {len(profiles) - 1} (dark)", fontsize=8)
    longest = max((result["blocks"] for result in variants.values()), key=len)
    shown = [longest, *(result["blocks"] for result in variants.values())]
    for axis, blocks in zip(flat, shown, strict=False):
        axis.set_yscale("log")
        axis.set_xticks(range(len(blocks)), [b.replace("decoder ", "d").replace("encoder ", "e")
                                             for b in blocks], fontsize=7)
        axis.set_xlabel("block")
        axis.grid(alpha=0.3)
    for axis in flat[panels:]:
        axis.set_visible(False)
    for axis in axes[:, 0]:
        axis.set_ylabel("gradient norm of the block")
    settings = doc["settings"]
    figure.suptitle(f"{doc['experiment']}: gradient norm per block ({settings['tokens']} tokens)",
                    fontsize=10)
    return [_save(figure, out / "gradient_profile.png")]
