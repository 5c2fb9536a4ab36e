"""Generation cost: per-token decode latency with and without the key/value cache, and a chat
that grows turn by turn.

Decode latency: a decoder-only model at the experiment's size (d_model, layers, heads, position)
generates `tokens` tokens greedily from a one-token prompt, so step i sees a sequence of i+1
tokens. Cached: one token per step against the cache (what `generate(use_cache=True)` does);
uncached: the whole sequence recomputed every step (`use_cache=False`). Each step is timed;
repeats alternate the two. The end-to-end speed-up is also measured with `generate()` itself.

Chat: `turns` turns of a `user`-token message and a `reply`-token answer. The transcript grows;
three ways to answer each turn, all at the same d_model/heads and `layers` per stack:
- decoder-only, cache kept across turns: feed only the new message into the cache, decode;
- decoder-only, re-prefill: run `generate()` on the whole transcript every turn;
- encoder-decoder: a bidirectional encoder cannot extend a cache (a new token changes every
  earlier token's encoding), so each turn re-encodes the whole transcript, then decodes the
  reply with its own cache (`generate(source=transcript)`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from tzoo.components import build_model, generate
from tzoo.recipes.data import prepare_data
from tzoo.recipes.tasks import resolve_model

from .subjects import random_tokens, with_overrides
from .timing import Stat, paired_ratios, round_robin

BOS = 1


def _model(config: dict, arch: str, max_len: int) -> nn.Module:
    variant = with_overrides(config, **{"model.arch": arch, "model.mask": None,
                                        "model.max_len": max_len, "model.dropout": 0.0})
    vocab = prepare_data(config).tokenizer.vocab_size
    torch.manual_seed(0)
    return build_model(resolve_model(variant, vocab_size=vocab)).eval()


@torch.no_grad()
def step_latencies(model: nn.Module, tokens: int, *, cached: bool) -> list[float]:
    """Seconds of each of `tokens` greedy steps from a one-token prompt (as generate() does)."""
    history = torch.full((1, 1), BOS, dtype=torch.long)
    state = model.new_state() if cached else None
    latencies = []
    feed = history
    for _ in range(tokens):
        start = time.perf_counter()
        logits = model(feed, state=state) if cached else model(history)
        token = logits[:, -1].argmax(dim=-1, keepdim=True)
        latencies.append(time.perf_counter() - start)
        history = torch.cat((history, token), dim=1)
        feed = token
    return latencies


def _window(latencies: list[float], at: int, width: int = 16) -> float:
    """Median latency of the `width` steps ending at token `at` (one step is too noisy)."""
    chunk = sorted(latencies[max(0, at - width) : at])
    return chunk[len(chunk) // 2]


def bench_decode(config: dict, *, tokens: int = 512, repeats: int = 3,
                 echo: Callable[[str], None] = print) -> dict[str, Any]:
    model = _model(config, "decoder", tokens + 1)
    prompt = torch.full((1, 1), BOS, dtype=torch.long)
    step_latencies(model, min(tokens, 32), cached=True)  # warm-up
    step_latencies(model, min(tokens, 32), cached=False)
    echo(f"generation: {tokens} tokens, cached vs uncached, {repeats} rounds")

    def run(cached: bool) -> dict[str, Any]:
        per_step = step_latencies(model, tokens, cached=cached)
        start = time.perf_counter()
        generate(model, prompt, max_new_tokens=tokens, use_cache=cached)
        return {"steps": per_step, "generate_s": time.perf_counter() - start}

    rounds = round_robin({"cached": lambda: run(True), "uncached": lambda: run(False)}, repeats)
    marks = [m for m in (1, 16, 32, 64, 128, 256, 384, 512, 1024, 2048) if m <= tokens]
    if tokens not in marks:
        marks.append(tokens)
    curves = {}
    for name, measured in rounds.items():
        curves[name] = {str(m): Stat.of([1e3 * _window(r["steps"], m) for r in measured]).to_dict()
                        for m in marks}
    # The full per-step curve (median over rounds) for the plot.
    median_curve = {name: [1e3 * sorted(r["steps"][i] for r in measured)[len(measured) // 2]
                           for i in range(tokens)] for name, measured in rounds.items()}
    start_mark = str(64 if tokens >= 64 else marks[0])
    return {
        "tokens": tokens,
        "latency_ms": curves,
        "per_step_ms": median_curve,
        "generate_s": {n: Stat.of([r["generate_s"] for r in m]).to_dict()
                       for n, m in rounds.items()},
        "speedup_total": paired_ratios([r["generate_s"] for r in rounds["uncached"]],
                                       [r["generate_s"] for r in rounds["cached"]]).to_dict(),
        "speedup_at_end": paired_ratios(
            [_window(r["steps"], tokens) for r in rounds["uncached"]],
            [_window(r["steps"], tokens) for r in rounds["cached"]]).to_dict(),
        "cached_flatness": paired_ratios(
            [_window(r["steps"], tokens) for r in rounds["cached"]],
            [_window(r["steps"], int(start_mark)) for r in rounds["cached"]]).to_dict(),
        "flatness_from": int(start_mark),
        "params": sum(p.numel() for p in model.parameters()),
    }


# ------------------------------------------------------------------------------------- chat


@torch.no_grad()
def _chat_cached(model: nn.Module, messages: list[Tensor], reply: int) -> list[float]:
    state, pending, seconds = model.new_state(), None, []
    for message in messages:
        start = time.perf_counter()
        feed = message if pending is None else torch.cat((pending, message), dim=1)
        logits = model(feed, state=state)
        for step in range(reply):
            token = logits[:, -1:].argmax(dim=-1)
            if step + 1 < reply:
                logits = model(token, state=state)
        pending = token  # the reply's last token enters the cache with the next message
        seconds.append(time.perf_counter() - start)
    return seconds


@torch.no_grad()
def _chat_regenerate(model: nn.Module, messages: list[Tensor], reply: int,
                     encoder_decoder: bool) -> list[float]:
    transcript = torch.empty((1, 0), dtype=torch.long)
    seconds = []
    for message in messages:
        start = time.perf_counter()
        transcript = torch.cat((transcript, message), dim=1)
        if encoder_decoder:
            answer = generate(model, source=transcript, bos_id=BOS, max_new_tokens=reply)
        else:
            answer = generate(model, transcript, max_new_tokens=reply)
        transcript = torch.cat((transcript, answer), dim=1)
        seconds.append(time.perf_counter() - start)
    return seconds


def bench_chat(config: dict, *, turns: int = 8, user: int = 32, reply: int = 32,
               repeats: int = 3, echo: Callable[[str], None] = print) -> dict[str, Any]:
    max_len = turns * (user + reply) + 2
    decoder = _model(config, "decoder", max_len)
    encoder_decoder = _model(config, "encoder_decoder", max_len)
    messages = [random_tokens(decoder, 1, user, seed=10 + t) for t in range(turns)]
    contenders = {
        "decoder (cache across turns)": lambda: _chat_cached(decoder, messages, reply),
        "decoder (re-prefill each turn)": lambda: _chat_regenerate(decoder, messages, reply,
                                                                   False),
        "encoder-decoder (re-encode each turn)": lambda: _chat_regenerate(
            encoder_decoder, messages, reply, True),
    }
    for run in contenders.values():  # warm-up
        run()
    echo(f"chat: {turns} turns of {user}+{reply} tokens, {repeats} rounds")
    rounds = round_robin(contenders, repeats)
    per_turn = {name: [Stat.of([1e3 * r[t] for r in measured]).to_dict() for t in range(turns)]
                for name, measured in rounds.items()}
    totals = {name: [sum(r) for r in measured] for name, measured in rounds.items()}
    base = "decoder (cache across turns)"
    return {
        "turns": turns, "user_tokens": user, "reply_tokens": reply,
        "transcript_tokens": [(t + 1) * (user + reply) for t in range(turns)],
        "per_turn_ms": per_turn,
        "total_s": {name: Stat.of(v).to_dict() for name, v in totals.items()},
        "total_vs_cached": {name: paired_ratios(v, totals[base]).to_dict()
                            for name, v in totals.items()},
        "params": {"decoder": sum(p.numel() for p in decoder.parameters()),
                   "encoder_decoder": sum(p.numel() for p in encoder_decoder.parameters())},
    }
