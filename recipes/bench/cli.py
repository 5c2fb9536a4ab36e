"""`tzoo bench`: what every variant of an experiment costs, and what the suite itself costs.

    tzoo bench EXP.yaml                          # the variants table
    tzoo bench EXP.yaml --scaling                # + context/depth curves, KV cache per token
    tzoo bench EXP.yaml --generation             # + cached vs uncached decoding, growing chat
    tzoo bench EXP.yaml --overhead [--compile]   # + runner vs bare loop, data-loading share
    tzoo bench EXP.yaml --gradients [--gradient-tokens random]  # + gradient norm per block
    tzoo bench EXP.yaml --no-table --overhead    # a mode alone

The variants table goes to `--json` (default runs/<experiment>/bench.json) and `--markdown`
(default the same path with .md). Its format, which `tzoo report` reads for the cost columns:

    {"experiment": "quickstart",
     "rows": [{"variant": "base", "params": 113408, "flops_per_token": 1.2e6,
               "train_tokens_per_s": 51234.0, "prefill_tokens_per_s": 3.1e5,
               "decode_tokens_per_s": 8000.0, "decode_ms_per_step": 2.0,
               "peak_mem_mb": 12.3, "mfu": 0.08}, ...],
     "details": {"base": {"train_tokens_per_s": {"median", "min", "max", "n"}, ...}},
     "machine": {"matmul_peak": {"gflops": ..., "per_size": {...}}, "threads": 2, ...},
     "settings": {...}, "command": "tzoo bench ..."}

`rows` holds one flat object per variant (medians; `variant` is the run's variant_name, as in
the run summaries; `mfu` is a fraction, `peak_mem_mb` in MiB, null where unmeasurable).
Ranges (min–max over rounds) are under `details`. Every mode also writes its JSON, PNG plots
and a regenerated README.md to `--plots` (default reports/bench/).

The flags are declared once, by `add_arguments`, which `tzoo` calls for its `bench` subcommand.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

# Light at import time: `tzoo` builds every subcommand's parser on each call (even `tzoo list`),
# so the experiment loader, matplotlib and the measuring modules load only when bench runs.
if TYPE_CHECKING:
    from tzoo.recipes.experiment import Experiment


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The `tzoo bench` flags, declared here only; `tzoo` adds them after the experiment
    arguments every experiment command takes (EXPERIMENT, --set, --out)."""
    parser.add_argument("--repeats", type=int, default=5,
                        help="interleaved rounds of every measurement (medians, min–max)")
    parser.add_argument("--json", metavar="FILE",
                        help="the variants table as JSON (default: bench.json in the runs "
                        "directory, --out or runs/<experiment>)")
    parser.add_argument("--markdown", metavar="FILE",
                        help="the variants table as markdown (default: the JSON's path, .md)")
    parser.add_argument("--scaling", action="store_true",
                        help="also sweep context length and depth (slower)")
    parser.add_argument("--generation", action="store_true",
                        help="also time decoding with/without the KV cache and a growing chat "
                        "(decoder-only with a cache vs encoder-decoder re-encoding)")
    parser.add_argument("--overhead", action="store_true",
                        help="also time the runner (Lightning) against a bare PyTorch loop and "
                        "the data-loading share, on the experiment's base configuration")
    parser.add_argument("--compile", action="store_true",
                        help="with --overhead: also time the bare loop under torch.compile")
    parser.add_argument("--gradients", action="store_true",
                        help="also profile each block's gradient norm at initialisation and "
                        "over the first steps, per variant (Xiong et al. 2020, Fig. 3)")
    parser.add_argument("--gradient-steps", type=int, default=20,
                        help="--gradients: training steps profiled after initialisation")
    parser.add_argument("--gradient-tokens", choices=("data", "random"), default="data",
                        help="--gradients: the real training batches, or uniformly random "
                        "tokens of the same shape")
    parser.add_argument("--no-table", action="store_true", help="skip the variants table")
    parser.add_argument("--threads", type=int, help="torch threads (sets train.threads)")
    parser.add_argument("--steps", type=int, default=3, help="training steps per round")
    parser.add_argument("--overhead-steps", type=int, default=100,
                        help="steps per round of --overhead (a multiple of train.log_every)")
    parser.add_argument("--contexts", default="128,256,512,1024",
                        help="--scaling context lengths (comma-separated)")
    parser.add_argument("--depths", default="1,2,4,8", help="--scaling layer counts")
    parser.add_argument("--gen-tokens", type=int, default=512, help="--generation length")
    parser.add_argument("--chat-turns", type=int, default=8, help="--generation chat turns")
    parser.add_argument("--peak-sizes", default="1024,1536,2048",
                        help="square matmul sizes for the fp32 peak behind MFU")
    parser.add_argument("--plots", metavar="DIR", default="reports/bench",
                        help="where mode results, PNG plots and README.md go")


def _ints(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split(",") if part.strip())


def _write_json(path: Path, doc: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=2, allow_nan=False) + "\n")


def _base_config(experiment: Experiment) -> dict[str, Any]:
    return experiment.plan()[0].config


def _table(experiment: Experiment, args: argparse.Namespace, plots: Path,
           command: str) -> None:
    from . import tables
    from .readme import VARIANT_COLUMNS, variants_markdown
    from .variants import bench_variants

    doc = bench_variants(experiment, repeats=args.repeats, steps=args.steps,
                         peak_sizes=_ints(args.peak_sizes))
    doc["command"] = command
    json_path = Path(args.json) if args.json else (
        Path(args.out) if args.out else experiment.runs_dir) / "bench.json"
    markdown_path = Path(args.markdown) if args.markdown else json_path.with_suffix(".md")
    _write_json(json_path, doc)
    markdown_path.parent.mkdir(parents=True, exist_ok=True)
    markdown_path.write_text(variants_markdown(doc) + "\n")
    _write_json(plots / "variants.json", doc)
    keys = [k for k, _ in VARIANT_COLUMNS]
    print()
    print(tables.text([h for _, h in VARIANT_COLUMNS],
                      [[row[k] for k in keys] for row in doc["rows"]]))
    print(f"\nwrote {json_path} and {markdown_path}")


def bench_command(args: argparse.Namespace) -> int:
    from tzoo.components import ConfigError
    from tzoo.recipes.experiment import load_experiment

    from .readme import write_readme

    if args.gradient_steps < 0:
        raise ConfigError(f"must be 0 or more, got {args.gradient_steps}", key="--gradient-steps")
    overrides = list(args.set)
    if args.threads:
        overrides.append(f"train.threads={args.threads}")
    experiment = load_experiment(args.experiment, overrides)
    plots = Path(args.plots)
    command = "tzoo bench " + shlex.join(sys.argv[2:] if len(sys.argv) > 2 else
                                         [args.experiment])
    if not args.no_table:
        _table(experiment, args, plots, command)
    config = _base_config(experiment)
    if config["train"].get("threads"):
        import torch

        torch.set_num_threads(int(config["train"]["threads"]))
    if args.overhead:
        from .overhead import bench_overhead
        from .readme import overhead_markdown

        doc = bench_overhead(config, steps=args.overhead_steps, repeats=args.repeats,
                             compile=args.compile)
        doc["command"] = command
        _write_json(plots / "overhead.json", doc)
        print("\n" + overhead_markdown(doc))
    if args.generation:
        from .generation import bench_chat, bench_decode
        from .plots import generation_plots
        from .readme import generation_markdown

        doc = {"decode": bench_decode(config, tokens=args.gen_tokens, repeats=args.repeats),
               "chat": bench_chat(config, turns=args.chat_turns, repeats=args.repeats),
               "command": command}
        _write_json(plots / "generation.json", doc)
        generation_plots(doc["decode"], doc["chat"], plots)
        print("\n" + generation_markdown(doc))
    if args.scaling:
        from .plots import scaling_plots
        from .readme import scaling_markdown
        from .scaling import bench_scaling

        doc = bench_scaling(experiment, contexts=_ints(args.contexts),
                            depths=_ints(args.depths), repeats=args.repeats)
        doc["command"] = command
        _write_json(plots / "scaling.json", doc)
        scaling_plots(doc, plots)
        print("\n" + scaling_markdown(doc))
    if args.gradients:
        from .gradients import gradient_profiles
        from .plots import gradient_plots
        from .readme import gradients_markdown

        doc = gradient_profiles(experiment, steps=args.gradient_steps,
                                tokens=args.gradient_tokens)
        doc["command"] = command
        _write_json(plots / "gradients.json", doc)
        gradient_plots(doc, plots)
        print("\n" + gradients_markdown(doc))
    readme = write_readme(plots)
    print(f"\nplots and {readme} in {plots}/")
    return 0
