"""Generation: greedy, sampling and beam search, with or without the key/value cache.

One small adapter per architecture hides how a step is computed, so every strategy works for
decoder-only and encoder-decoder models alike:

- decoder-only: the prompt is the prefix; each step extends the cached keys/values by one token
  (or, uncached, recomputes the whole sequence);
- encoder-decoder: the source is encoded once and its cross-attention keys/values are cached;
  the target starts from `bos_id` (uncached: the source is re-encoded at every step, which is
  what a bidirectional encoder costs in a growing chat).
"""

from __future__ import annotations

import torch
from torch import Tensor

from .cache import expand_rows
from .masks import PrefixMask
from .model import EncoderDecoder, LanguageModel


class _Stepper:
    """Next-token logits for a batch, one token at a time."""

    def __init__(self, model, *, prompt: Tensor | None, source: Tensor | None,
                 source_padding: Tensor | None, prefix_lengths: Tensor | None,
                 bos_id: int | None, use_cache: bool, rows: int = 1):
        self.model, self.use_cache = model, use_cache
        self.encoder_decoder = isinstance(model, EncoderDecoder)
        if self.encoder_decoder:
            if source is None or bos_id is None:
                raise ValueError("an encoder-decoder model needs `source` and `bos_id`")
            self.source = expand_rows(source, rows)
            self.source_padding = (
                None if source_padding is None else expand_rows(source_padding, rows)
            )
            start = torch.full((self.source.shape[0], 1), bos_id, dtype=torch.long,
                               device=source.device)
            self.history = start
            self.prefix_lengths = None
        else:
            if prompt is None:
                raise ValueError("a decoder-only model needs a `prompt`")
            self.history = expand_rows(prompt, rows)
            self.prefix_lengths = (
                None if prefix_lengths is None else expand_rows(prefix_lengths, rows)
            )
        if use_cache:
            _check_prefix_covered(model.mask, self.history.shape[1], self.prefix_lengths)
        self.state = None

    def first(self) -> Tensor:
        if not self.use_cache:
            return self._recompute()
        if self.encoder_decoder:
            memory = self.model.encode(self.source, self.source_padding)
            self.state = self.model.new_state(memory, self.source_padding)
            logits = self.model.decode(self.history, memory, self.source_padding,
                                       state=self.state)
        else:
            self.state = self.model.new_state()
            logits = self.model(self.history, prefix_lengths=self.prefix_lengths,
                                state=self.state)
        return logits[:, -1]

    def next(self, tokens: Tensor) -> Tensor:
        self.history = torch.cat((self.history, tokens[:, None]), dim=1)
        if not self.use_cache:
            return self._recompute()
        if self.encoder_decoder:
            logits = self.model.decode(tokens[:, None], self.state.memory,
                                       self.state.memory_padding, state=self.state)
        else:
            logits = self.model(tokens[:, None], state=self.state)
        return logits[:, -1]

    def _recompute(self) -> Tensor:
        if self.encoder_decoder:
            logits = self.model(self.source, self.history, source_padding=self.source_padding)
        else:
            logits = self.model(self.history, prefix_lengths=self.prefix_lengths)
        return logits[:, -1]

    def reorder(self, index: Tensor) -> None:
        self.history = self.history.index_select(0, index)
        if self.state is not None:
            self.state.reorder(index)
        if self.encoder_decoder:
            self.source = self.source.index_select(0, index)
            if self.source_padding is not None:
                self.source_padding = self.source_padding.index_select(0, index)
        elif self.prefix_lengths is not None:
            self.prefix_lengths = self.prefix_lengths.index_select(0, index)


def _check_prefix_covered(mask, prompt_length: int, prefix_lengths: Tensor | None) -> None:
    """The cache keeps each position's keys as first computed, so a bidirectional prefix must be
    complete in the prompt: a generated token inside it would change the earlier positions."""
    if not isinstance(mask, PrefixMask):
        return
    if prefix_lengths is not None:
        longest = int(prefix_lengths.max()) if prefix_lengths.numel() else 0
    else:
        longest = mask.length or 0
    if longest > prompt_length:
        raise ValueError(
            f"the prefix ({longest} tokens) extends past the prompt ({prompt_length} tokens): "
            "cached generation cannot revise the keys of earlier prefix positions; give a prompt "
            "that covers the prefix, or use_cache=False"
        )


def _check_model(model) -> None:
    if not isinstance(model, (LanguageModel, EncoderDecoder)):
        raise TypeError(f"cannot generate with {type(model).__name__}")
    if isinstance(model, LanguageModel) and not model.mask.causal:
        raise ValueError("generation needs a causal or prefix mask; this model is bidirectional")


@torch.no_grad()
def generate(
    model,
    prompt: Tensor | None = None,
    *,
    source: Tensor | None = None,
    source_padding: Tensor | None = None,
    prefix_lengths: Tensor | None = None,
    max_new_tokens: int = 32,
    temperature: float = 0.0,
    top_k: int | None = None,
    top_p: float | None = None,
    eos_id: int | None = None,
    pad_id: int = 0,
    bos_id: int | None = None,
    use_cache: bool = True,
    generator: torch.Generator | None = None,
    return_logits: bool = False,
):
    """New tokens (batch, ≤ max_new_tokens): greedy when `temperature` is 0, else sampled from
    softmax(logits / temperature), restricted to the `top_k` most likely tokens and to the
    smallest set of tokens whose probabilities reach `top_p` (nucleus sampling, Holtzman et al.
    2020, "The Curious Case of Neural Text Degeneration") when given.

    Sequences that produced `eos_id` are padded with `pad_id` afterwards; generation stops when
    all have. `return_logits` also returns the (batch, steps, vocab) logits of every step.
    """
    _check_model(model)
    stepper = _Stepper(model, prompt=prompt, source=source, source_padding=source_padding,
                       prefix_lengths=prefix_lengths, bos_id=bos_id, use_cache=use_cache)
    logits = stepper.first()
    finished = torch.zeros(logits.shape[0], dtype=torch.bool, device=logits.device)
    tokens, all_logits = [], []
    for step in range(max_new_tokens):
        all_logits.append(logits)
        token = _choose(logits, temperature, top_k, top_p, generator)
        token = torch.where(finished, torch.full_like(token, pad_id), token)
        tokens.append(token)
        if eos_id is not None:
            finished |= token == eos_id
            if bool(finished.all()):
                break
        if step + 1 < max_new_tokens:
            logits = stepper.next(token)
    out = torch.stack(tokens, dim=1)
    return (out, torch.stack(all_logits, dim=1)) if return_logits else out


def _choose(logits: Tensor, temperature: float, top_k: int | None, top_p: float | None,
            generator: torch.Generator | None) -> Tensor:
    if temperature <= 0:
        return logits.argmax(dim=-1)
    logits = logits / temperature
    if top_k is not None and top_k < logits.shape[-1]:
        threshold = logits.topk(top_k, dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < threshold, float("-inf"))
    probabilities = logits.float().softmax(dim=-1)
    if top_p is not None and top_p < 1.0:
        ordered, order = probabilities.sort(dim=-1, descending=True)
        # Keep a token while the mass before it is below top_p: the most likely always stays.
        dropped = ordered.cumsum(dim=-1) - ordered >= top_p
        ordered = ordered.masked_fill(dropped, 0.0)
        probabilities = torch.zeros_like(probabilities).scatter(-1, order, ordered)
    return torch.multinomial(probabilities, 1, generator=generator).squeeze(-1)


@torch.no_grad()
def beam_search(
    model,
    prompt: Tensor | None = None,
    *,
    source: Tensor | None = None,
    source_padding: Tensor | None = None,
    prefix_lengths: Tensor | None = None,
    beam_size: int = 4,
    max_new_tokens: int = 32,
    eos_id: int | None = None,
    pad_id: int = 0,
    bos_id: int | None = None,
    length_penalty: float = 1.0,
    use_cache: bool = True,
) -> Tensor:
    """The best of `beam_size` hypotheses per input, scored by log-probability / length^penalty
    (Wu et al. 2016, GNMT, section 7). Returns (batch, ≤ max_new_tokens), padded with `pad_id`."""
    _check_model(model)
    stepper = _Stepper(model, prompt=prompt, source=source, source_padding=source_padding,
                       prefix_lengths=prefix_lengths, bos_id=bos_id, use_cache=use_cache,
                       rows=beam_size)
    logits = stepper.first()
    rows, vocab = logits.shape
    batch = rows // beam_size
    device = logits.device
    # Only the first beam of each input is live at the start, so the k beams differ.
    scores = torch.full((batch, beam_size), float("-inf"), device=device)
    scores[:, 0] = 0.0
    finished = torch.zeros(batch, beam_size, dtype=torch.bool, device=device)
    lengths = torch.zeros(batch, beam_size, device=device)
    sequences = torch.empty(batch, beam_size, 0, dtype=torch.long, device=device)
    for step in range(max_new_tokens):
        log_probs = logits.float().log_softmax(dim=-1).view(batch, beam_size, vocab)
        # A finished hypothesis can only continue with padding, at no cost.
        frozen = torch.full_like(log_probs, float("-inf"))
        frozen[..., pad_id] = 0.0
        log_probs = torch.where(finished[..., None], frozen, log_probs)
        candidates = (scores[..., None] + log_probs).view(batch, -1)
        scores, flat = candidates.topk(beam_size, dim=-1)
        origin, token = flat // vocab, flat % vocab
        sequences = torch.cat(
            (sequences.gather(1, origin[..., None].expand_as(sequences)), token[..., None]),
            dim=-1,
        )
        was_finished = finished.gather(1, origin)
        lengths = lengths.gather(1, origin) + (~was_finished).float()
        finished = was_finished | (token == eos_id if eos_id is not None else False)
        if bool(finished.all()) or step + 1 == max_new_tokens:
            break
        index = (origin + torch.arange(batch, device=device)[:, None] * beam_size).view(-1)
        stepper.reorder(index)
        logits = stepper.next(token.view(-1))
    normalised = scores / lengths.clamp(min=1.0) ** length_penalty
    best = normalised.argmax(dim=-1)
    return sequences[torch.arange(batch, device=device), best]
