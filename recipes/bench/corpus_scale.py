"""How preparing and training scale with the corpus: token files against the in-memory path.

    python -m tzoo.recipes.bench.corpus_scale --repeats 1,5,20,50 --in-memory 1,5

builds WikiText-2-raw stand-ins in `--work` (default /tmp/tzoo-corpus-scale; never commit
them): train.txt is WikiText-2 raw's train.txt repeated N times (x50 is ~547 MB, WikiText-103's
size), valid.txt and test.txt are WikiText-2 raw's. For each, in fresh processes:

* prepare: the first `prepare_data` (hashing, tokenizer, token files), seconds and peak RSS;
* start: a second process's `prepare_data` to its first batch (token files exist by then);
* train: the peak RSS of `--steps` training steps of a small decoder on the prepared data, the
  resident-set high-water mark reset after preparation, with the file-backed part (pages of the
  memory-mapped token files, which the kernel may drop at any time) shown apart.

The in-memory path (`data.token_files: false`) is measured at the `--in-memory` sizes only: it
holds the text several times over (a Python string, a `datasets` table, a list of ints, an
int64 tensor), which at x50 would not fit this machine.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SPLITS = {"train.txt": "train.txt", "valid.txt": "valid.txt", "test.txt": "test.txt"}


def standin(source: Path, work: Path, repeats: int) -> Path:
    """WikiText-2 raw with its train.txt repeated `repeats` times (made once)."""
    folder = work / f"x{repeats}"
    train = folder / "train.txt"
    expected = (source / "train.txt").stat().st_size * repeats
    if train.is_file() and train.stat().st_size == expected:
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("valid.txt", "test.txt"):
        shutil.copyfile(source / name, folder / name)
    with train.open("wb") as out:
        for _ in range(repeats):
            with (source / "train.txt").open("rb") as f:
                shutil.copyfileobj(f, out, 1 << 20)
    return folder


def _status() -> dict[str, int]:
    fields = {}
    with open("/proc/self/status") as status:
        for line in status:
            key, _, value = line.partition(":")
            if key in ("VmHWM", "VmRSS", "RssAnon", "RssFile"):
                fields[key] = int(value.split()[0]) // 1024  # MiB
    return fields


def child(folder: str, mode: bool, steps: int, threads: int) -> dict:
    """One measurement, in this (fresh) process."""
    import torch

    from tzoo.components import ModelConfig, build_model
    from tzoo.recipes.batches import TrainWindows
    from tzoo.recipes.data import prepare_data
    from tzoo.recipes.resident import release_freed_memory, reset_high_water_mark

    torch.set_num_threads(threads)
    config = {"task": {"name": "lm"}, "data": {"corpus": f"file:{folder}", "options": {},
                                               "tokenizer": "char", "token_files": mode}}
    started = time.perf_counter()
    data = prepare_data(config)
    windows = TrainWindows(data.lm_stream("train"), context=128, batch_size=16, seed=0)
    first = windows.batch_at(0)["tokens"]
    ready = time.perf_counter() - started
    prepared = _status()
    release_freed_memory()
    reset_high_water_mark()
    model = build_model(ModelConfig(vocab_size=data.tokenizer.vocab_size, d_model=64, layers=2,
                                    heads=4, max_len=128))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    train_started = time.perf_counter()
    for step in range(steps):
        tokens = windows.batch_at(step)["tokens"] if step else first
        logits = model(tokens[:, :-1])
        loss = torch.nn.functional.cross_entropy(logits.flatten(0, 1), tokens[:, 1:].flatten())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    trained = _status()
    return {"ready_s": round(ready, 2), "train_s": round(time.perf_counter() - train_started, 2),
            "prepare_peak_mib": prepared["VmHWM"], "train_peak_mib": trained["VmHWM"],
            "train_rss_anon_mib": trained["RssAnon"], "train_rss_file_mib": trained["RssFile"],
            "train_tokens": len(windows.stream), "loss": round(float(loss), 3)}


def measure(folder: Path, mode: bool, steps: int, threads: int, tokens: Path) -> dict:
    environment = {**os.environ, "TZOO_TOKEN_DIR": str(tokens)}
    command = [sys.executable, "-m", "tzoo.recipes.bench.corpus_scale", "--child", str(folder),
               "--mode", str(mode), "--steps", str(steps), "--threads", str(threads)]
    done = subprocess.run(command, capture_output=True, text=True, env=environment, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tzoo.recipes.bench.corpus_scale",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", default="1,5,20,50")
    parser.add_argument("--in-memory", default="1,5")
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir())
                        / "tzoo-corpus-scale")
    parser.add_argument("--source", type=Path, default=None,
                        help="a WikiText-2 raw folder (default: the dataset cache's, fetched "
                             "if needed)")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--child")
    parser.add_argument("--mode")
    args = parser.parse_args(argv)
    if args.child:
        mode = {"True": True, "False": False}[args.mode]
        print(json.dumps(child(args.child, mode, args.steps, args.threads)))
        return 0
    if args.source is None:
        from tzoo.recipes.store import CATALOGUE, ensure

        args.source = ensure(CATALOGUE["wikitext-2-raw"])
    rows = []
    for repeats in [int(r) for r in args.repeats.split(",")]:
        folder = standin(args.source, args.work, repeats)
        size = sum(p.stat().st_size for p in folder.glob("*.txt"))
        modes = [True] + ([False] if str(repeats) in args.in_memory.split(",") else [])
        for mode in modes:
            tokens = args.work / f"tokens-x{repeats}"
            shutil.rmtree(tokens, ignore_errors=True)  # cold: nothing prepared yet
            first = measure(folder, mode, args.steps, args.threads, tokens)
            second = measure(folder, mode, args.steps, args.threads, tokens)
            row = {"repeats": repeats, "corpus_mb": round(size / 1e6, 1),
                   "path": "token files" if mode else "in memory",
                   "prepare_s": first["ready_s"], "start_s": second["ready_s"],
                   "prepare_peak_mib": first["prepare_peak_mib"],
                   "train_peak_mib": second["train_peak_mib"],
                   "train_rss_anon_mib": second["train_rss_anon_mib"],
                   "train_rss_file_mib": second["train_rss_file_mib"],
                   "train_s": second["train_s"], "train_tokens": second["train_tokens"]}
            rows.append(row)
            print(json.dumps(row), flush=True)
    print("\n| corpus | path | prepare (first run) | start (next runs) | peak RSS preparing |"
          " peak RSS training (of it file-backed) |\n| ---: | --- | ---: | ---: | ---: | ---: |")
    for r in rows:
        print(f"| {r['corpus_mb']:,} MB | {r['path']} | {r['prepare_s']} s | {r['start_s']} s | "
              f"{r['prepare_peak_mib']:,} MiB | {r['train_peak_mib']:,} MiB "
              f"({r['train_rss_file_mib']} MiB) |")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"rows": rows, "steps": args.steps,
                                         "threads": args.threads}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
