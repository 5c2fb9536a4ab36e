"""The zoo against nanoGPT itself: the shared peer harness, run at several shapes, summarised.

    NANOGPT_MODEL_PATH=/scratch/nanogpt/model.py python -m tzoo.recipes.bench.peer --rounds 5

`../shared/bench/peer_bench.py` (outside this repository, with its README) times training steps
(forward + cross-entropy + backward + AdamW) of karpathy/nanoGPT's `GPT` and of factories that
build the zoo's registry-built decoder (`../shared/bench/tzoo_factory.py`, one per position
variant), each measurement in a fresh process, peers interleaved over rounds, with the fp32
matmul ceiling measured in the same run (MFU). nanoGPT's `model.py` never enters the repository:
put it in a scratch folder (the harness's README says how) and pass its path; its sha256 is
checked against the commit the harness was written for.

This module runs the harness once per shape (`--shapes CONTEXTxBATCH,...`; the default keeps the
tokens per step at 4,096: 256×16, 1024×4, 2048×2), then writes `reports/bench/peer.md` (the
command, the machine and its load, a summary table, and the harness's own tables) and
`peer.json` (every harness result). Ratios are medians of per-round ratios: on a shared machine
only they mean something. The summary also compares every variant with the zoo's base
(`learned`, as `tzoo bench --scaling` does) and gives training memory as peak RSS minus the RSS
after the model was built, which leaves out the interpreter and torch.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from tzoo.recipes.rundir import git_commit, write_atomic, write_json

from . import tables

#: nanoGPT's model.py at commit 3adf61e1 (2025-11-12), the one the harness was written for
NANOGPT_SHA256 = "7c01703240dbec5d554527dc666e35b3df8391d0b117fddc07afcf325a21d11c"
NANOGPT_COMMIT = "3adf61e154c3fe3fca428ad6bc3818b27a3b8291"
VARIANTS = ("learned", "none", "sinusoidal", "rotary", "alibi", "relative")
REFERENCE, BASE = "nanogpt", "learned"
ROOT = Path(__file__).resolve().parents[2]


class PeerError(Exception):
    """Bad input: reported in one paragraph, exit status 2."""


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def nanogpt_path(given: str | None) -> Path:
    """The scratch model.py, checked: present and the pinned commit's."""
    if not given:
        raise PeerError("nanoGPT's model.py is needed: pass --nanogpt PATH or set "
                        "NANOGPT_MODEL_PATH (../shared/bench/README.md says how to get it into a "
                        "scratch folder, never into the repository)")
    path = Path(given)
    if path.is_dir():
        path = path / "model.py"
    if not path.is_file():
        raise PeerError(f"nanoGPT's model.py: {path} does not exist")
    digest = sha256(path)
    if digest != NANOGPT_SHA256:
        raise PeerError(f"nanoGPT's model.py: {path} has sha256 {digest}, not the "
                        f"{NANOGPT_SHA256} of commit {NANOGPT_COMMIT[:8]} the harness measures")
    return path


def parse_shapes(text: str) -> list[tuple[int, int]]:
    shapes = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        context, sep, batch = part.lower().partition("x")
        if not (sep and context.isdigit() and batch.isdigit()):
            raise PeerError(f"--shapes: {part!r} is not CONTEXTxBATCH (e.g. 256x16)")
        shapes.append((int(context), int(batch)))
    if not shapes:
        raise PeerError("--shapes: no shape given (e.g. 256x16,1024x4)")
    return shapes


def harness_command(harness: Path, variants: list[str], context: int, batch: int, threads: int,
                    args: argparse.Namespace, json_out: Path, md_out: Path) -> list[str]:
    command = [sys.executable, str(harness), "--peers", REFERENCE]
    for variant in variants:
        command += ["--factory", f"tzoo_factory:{variant}"]
    if args.monolithic:
        command += ["--factory", "tzoo.recipes.bench.peer:monolithic_learned"]
    return [
        *command, "--ctx", str(context), "--batch", str(batch), "--rounds", str(args.rounds),
        "--steps", str(args.steps), "--warmup", str(args.warmup), "--threads", str(threads),
        "--no-profile", "--scaling-peer", "", "--json-out", str(json_out), "--md-out",
        str(md_out),
    ]


def monolithic_learned(vocab_size: int, block_size: int, d_model: int, n_layer: int,
                       n_head: int, d_ff: int, dropout: float = 0.0):
    """The monolithic reference of `zoo_vs_gpt` (learned positions) as a harness factory: it
    must not be slower than nanoGPT, or the zoo's ≈ 1.0× against it would flatter the zoo."""
    from .monolithic_gpt import GPT

    return GPT("learned", vocab=vocab_size, context=block_size, d=d_model, layers=n_layer,
               heads=n_head, mult=d_ff // d_model)


def _peer_name(peer: str) -> str:
    """'factory=tzoo_factory:alibi' -> 'alibi'; 'nanogpt' stays."""
    return peer.split(":")[-1] if peer.startswith("factory=") else peer


def summarise(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Per peer: tokens/s ratios to nanoGPT and to the zoo's base (medians of per-round ratios,
    with ranges), peak RSS and training memory (peak - after build) and their ratios, MFU."""
    runs = [dict(r, train_mb=r["peak_rss_mb"] - r["rss_built_mb"]) for r in doc["runs"]
            if "error" not in r]
    by_peer: dict[str, dict[int, dict]] = {}
    for r in runs:
        by_peer.setdefault(_peer_name(r["peer"]), {})[r["round"]] = r
    flops = doc["flops_per_token"]["total"]
    ceiling = doc["matmul_limit_gflops"] * 1e9

    def ratios(peer: dict[int, dict], other: dict[int, dict] | None,
               key: str) -> dict[str, float] | None:
        if not other:
            return None
        return _stat([peer[r][key] / other[r][key] for r in peer if r in other])

    out = {}
    for name, rounds in by_peer.items():
        tps = [r["tokens_per_s"] for r in rounds.values()]
        out[name] = {
            "tokens_per_s": _stat(tps),
            "step_ms": _stat([1e3 * r["step_s_median"] for r in rounds.values()]),
            "peak_rss_mb": _stat([r["peak_rss_mb"] for r in rounds.values()]),
            "train_mb": _stat([r["train_mb"] for r in rounds.values()]),
            "mfu": statistics.median(tps) * flops / ceiling,
            "speed_vs_nanogpt": ratios(rounds, by_peer.get(REFERENCE), "tokens_per_s"),
            "speed_vs_base": ratios(rounds, by_peer.get(BASE), "tokens_per_s"),
            "peak_rss_vs_nanogpt": ratios(rounds, by_peer.get(REFERENCE), "peak_rss_mb"),
            "train_mb_vs_base": ratios(rounds, by_peer.get(BASE), "train_mb"),
            "train_mb_vs_nanogpt": ratios(rounds, by_peer.get(REFERENCE), "train_mb"),
            "rounds": len(rounds),
        }
    errors = sorted({_peer_name(r["peer"]) for r in doc["runs"] if "error" in r})
    if errors:
        out["_errors"] = errors
    return out


def _stat(values: list[float]) -> dict[str, float] | None:
    if not values:
        return None
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def _ratio(stat: dict[str, float] | None) -> str:
    if not stat:
        return "—"
    return f"{stat['median']:.2f} ({stat['min']:.2f}–{stat['max']:.2f})"


def summary_markdown(shape: dict[str, Any]) -> str:
    summary = shape["summary"]
    rows = []
    for name, s in summary.items():
        if name.startswith("_"):
            continue
        rows.append([name, f"{s['tokens_per_s']['median']:,.0f}", f"{s['step_ms']['median']:.0f}",
                     _ratio(s["speed_vs_nanogpt"]), _ratio(s["speed_vs_base"]),
                     f"{100 * s['mfu']:.1f} %", f"{s['peak_rss_mb']['median']:.0f}",
                     _ratio(s["peak_rss_vs_nanogpt"]), f"{s['train_mb']['median']:.0f}",
                     _ratio(s["train_mb_vs_nanogpt"]), _ratio(s["train_mb_vs_base"])])
    headers = ["peer", "tokens/s", "step ms", "speed vs nanoGPT", f"speed vs {BASE}", "MFU",
               "peak RSS MB", "peak RSS vs nanoGPT", "train MB", "train MB vs nanoGPT",
               f"train MB vs {BASE}"]
    text = tables.markdown(headers, rows)
    if summary.get("_errors"):
        text += f"\n\nFailed: {', '.join(summary['_errors'])} (see peer.json)."
    return text


def report_markdown(doc: dict[str, Any]) -> str:
    machine = doc["machine"]
    parts = [
        "# The zoo against nanoGPT",
        f"Generated by `{doc['command']}` (recipes/bench/peer.py, which runs "
        "`../shared/bench/peer_bench.py` once per shape); do not edit by hand.",
        f"Machine: {machine['cpu']}, {machine['cores']} cores, torch threads "
        f"{', '.join(str(t) for t in doc['threads'])}, "
        f"torch {machine['torch']}, Python {machine['python']}; suite commit {doc['git']}; "
        f"nanoGPT model.py of commit {NANOGPT_COMMIT[:8]} (sha256 {NANOGPT_SHA256[:12]}…). "
        f"Load average (1/5/15 min) {_load(doc['load_before'])} before, "
        f"{_load(doc['load_after'])} after; {doc['wall_s'] / 60:.0f} min in all. Other "
        "processes shared the machine: read the ratios (medians of per-round ratios, each "
        "measurement a fresh process, peers interleaved), not the absolute numbers.",
        "Speed = tokens/s ratio (> 1: faster). Peak RSS includes the interpreter and torch; "
        "train MB = peak RSS − RSS after the model was built (activations, gradients, optimizer "
        "state, temporaries). MFU = (6·N + 12·L·d·T)·tokens/s over the measured fp32 matmul "
        "ceiling, the same FLOPs for every peer.",
    ]
    for shape in doc["shapes"]:
        context, batch = shape["context"], shape["batch"]
        parts += [f"## Context {context}, batch {batch} ({context * batch:,} tokens per step), "
                  f"{shape['threads']} thread{'s' if shape['threads'] > 1 else ''}",
                  summary_markdown(shape)
                  + (f"\n\nLoad average when this shape finished: {_load(shape['load_after'])}."
                     if shape.get("load_after") else ""),
                  "<details><summary>The harness's own table</summary>\n\n"
                  + shape["harness_markdown"].strip() + "\n\n</details>"]
    return "\n\n".join(parts) + "\n"


def _load(values: list[float]) -> str:
    return " / ".join(f"{v:.1f}" for v in values)


def run(args: argparse.Namespace) -> int:
    harness = Path(args.harness)
    if not harness.is_file():
        raise PeerError(f"--harness: {harness} does not exist (the shared peer harness, "
                        "../shared/bench/peer_bench.py)")
    nanogpt = nanogpt_path(args.nanogpt)
    shapes = parse_shapes(args.shapes)
    try:
        threads = [int(t) for t in args.threads.split(",") if t.strip()]
    except ValueError:
        threads = []
    if not threads or min(threads) < 1:
        raise PeerError(f"--threads: {args.threads!r} is not a list of thread counts (e.g. 2,1)")
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = sorted(set(variants) - set(VARIANTS))
    if unknown:
        raise PeerError(f"--variants: unknown {', '.join(unknown)}; allowed: "
                        f"{', '.join(VARIANTS)}")
    out = Path(args.out)
    env = dict(os.environ, NANOGPT_MODEL_PATH=str(nanogpt),
               PYTHONPATH=os.pathsep.join(filter(None, [str(harness.parent),
                                                        os.environ.get("PYTHONPATH")])))
    started, load_before = time.perf_counter(), list(os.getloadavg())
    results = []
    with tempfile.TemporaryDirectory() as scratch:
        for n_threads in threads:
            for context, batch in shapes:
                json_out = Path(scratch) / f"peer-{context}x{batch}-{n_threads}.json"
                md_out = json_out.with_suffix(".md")
                command = harness_command(harness, variants, context, batch, n_threads, args,
                                          json_out, md_out)
                print(f"peer: context {context}, batch {batch}, {n_threads} threads: "
                      f"{shlex.join(command[1:])}", flush=True)
                done = subprocess.run(command, env=env, cwd=harness.parent)
                if done.returncode != 0 or not json_out.is_file():
                    print(f"peer: the harness failed at {context}x{batch} (exit "
                          f"{done.returncode})", file=sys.stderr)
                    return 1
                harness_doc = json.loads(json_out.read_text())
                results.append({"context": context, "batch": batch, "threads": n_threads,
                                "summary": summarise(harness_doc),
                                "harness_markdown": md_out.read_text(), "harness": harness_doc,
                                "load_after": list(os.getloadavg())})
    import platform

    import torch

    versions = results[0]["harness"]["versions"]
    doc = {
        "command": "python -m tzoo.recipes.bench.peer " + shlex.join(sys.argv[1:]),
        "machine": {"cpu": versions.get("cpu", platform.processor()), "cores": os.cpu_count(),
                    "torch": torch.__version__, "python": platform.python_version()},
        "threads": threads, "git": git_commit(), "load_before": load_before,
        "load_after": list(os.getloadavg()), "wall_s": time.perf_counter() - started,
        "nanogpt": {"commit": NANOGPT_COMMIT, "sha256": NANOGPT_SHA256},
        "shapes": results,
    }
    write_json(out / "peer.json", doc)
    write_atomic(out / "peer.md", report_markdown(doc))
    print(f"\nwrote {out / 'peer.md'} and {out / 'peer.json'}")
    for shape in results:
        print(f"\ncontext {shape['context']}, batch {shape['batch']}, {shape['threads']} "
              "threads\n" + summary_markdown(shape))
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m tzoo.recipes.bench.peer",
                                description=__doc__.split("\n\n")[0])
    p.add_argument("--nanogpt", default=os.environ.get("NANOGPT_MODEL_PATH"),
                   help="nanoGPT's model.py in a scratch folder (default: $NANOGPT_MODEL_PATH)")
    p.add_argument("--harness", default=str(ROOT.parent / "shared" / "bench" / "peer_bench.py"),
                   help="the shared peer harness (default: ../shared/bench/peer_bench.py)")
    p.add_argument("--shapes", default="256x16,1024x4,2048x2",
                   help="CONTEXTxBATCH,... (default keeps 4,096 tokens per step)")
    p.add_argument("--variants", default=",".join(VARIANTS),
                   help=f"zoo position variants to run (default: {','.join(VARIANTS)})")
    p.add_argument("--monolithic", action="store_true",
                   help="also run zoo_vs_gpt's monolithic reference (learned positions)")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--steps", type=int, default=30, help="timed steps per measurement")
    p.add_argument("--warmup", type=int, default=5, help="untimed steps per measurement")
    p.add_argument("--threads", default="2",
                   help="torch threads; several (2,1) run every shape at each")
    p.add_argument("--out", default=str(ROOT / "reports" / "bench"),
                   help="where peer.md and peer.json go (default: reports/bench)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return run(args)
    except PeerError as error:
        print(f"python -m tzoo.recipes.bench.peer: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
