"""What the model learned: probes on a trained model, each returning a small result.

The probes code to the model API of `tzoo.components.model`:

- ``model(tokens, return_attention=True) -> (logits, attentions)``, one (batch, heads, q, k)
  tensor of attention probabilities per layer (an encoder-decoder is called as
  ``model(source, target, return_attention=True)`` and returns a dict of such lists);
- ``model(tokens, return_hidden=True) -> (logits, hidden)``: the embedding output, then each
  layer's output, each (batch, seq, d_model);
- ``model.embedding`` (nn.Embedding) and ``model.position`` (``.table`` when learned).

A probe that does not apply to a model (no learned position table, no hidden states) returns a
result with `skipped` set instead of raising, so the report can say why it is absent.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from torch import nn

DPI = 100
SAMPLE_TEXT = "the cat sat on the mat. the cat sat on the mat."


@dataclass
class ProbeResult:
    """Figure paths, headline numbers and a one-line caption; or why the probe did not run."""

    name: str
    title: str
    caption: str = ""
    figures: list[Path] = field(default_factory=list)
    numbers: dict[str, float] = field(default_factory=dict)
    table: tuple[list[str], list[list[str]]] | None = None
    skipped: str | None = None

    @classmethod
    def skip(cls, name: str, title: str, reason: str) -> ProbeResult:
        return cls(name=name, title=title, skipped=reason)


# ---------------------------------------------------------------------------------------------
# helpers


def _figure(width: float, height: float) -> Figure:
    fig = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _position_heatmap(fig: Figure, ax: Any, similarity: np.ndarray, title: str) -> None:
    """A position × position cosine-similarity map on a fixed −1..1 scale."""
    image = ax.imshow(similarity, cmap="RdBu_r", vmin=-1, vmax=1)
    fig.colorbar(image, ax=ax, shrink=0.85, label="cosine similarity")
    ax.set_xlabel("position")
    ax.set_ylabel("position")
    ax.set_title(title, fontsize=9)


def _hidden_states(model: nn.Module, tokens: torch.Tensor) -> tuple[list[torch.Tensor], str]:
    """Per-layer states (embedding output, then each block) and which stack they are from: a
    language model's own, or an encoder-decoder's encoder (the stack that reads the source)."""
    if _is_encoder_decoder(model):
        return model.encode(tokens, return_hidden=True)[1], "encoder"
    return model(tokens, return_hidden=True)[1], "model"


def _save(fig: Figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png")
    return path


def max_length(model: nn.Module) -> int | None:
    """The longest sequence the model's positions can represent; None when unbounded."""
    length = getattr(model, "max_positions", None)
    if length is None:
        length = getattr(getattr(model, "position", None), "max_len", None)
    return int(length) if length else None


def _fit(length: int, model: nn.Module) -> int:
    limit = max_length(model)
    return min(length, limit) if limit else length


def _is_encoder_decoder(model: nn.Module) -> bool:
    return callable(getattr(model, "encode", None)) and callable(getattr(model, "decode", None))


@torch.no_grad()
def attention_by_stack(model: nn.Module, tokens: torch.Tensor) -> dict[str, list[torch.Tensor]]:
    """Attention probabilities per layer, keyed by stack ('self', or 'encoder'/'decoder')."""
    if _is_encoder_decoder(model):
        # Self-attention maps only: the same sequence is fed as source and target.
        _, maps = model(tokens, tokens, return_attention=True)
        return {"encoder": list(maps["encoder"]), "decoder": list(maps["decoder"])}
    _, maps = model(tokens, return_attention=True)
    return {"self": list(maps)}


def _vocab_size(model: nn.Module, tokenizer: Any | None) -> int:
    if tokenizer is not None and getattr(tokenizer, "vocab_size", None):
        return int(tokenizer.vocab_size)
    return int(model.embedding.num_embeddings)


def token_text(tokenizer: Any | None, token: int) -> str:
    """A readable label for one token id (its decoded text, or '#id')."""
    if tokenizer is not None:
        try:
            text = tokenizer.decode([token])
        except Exception:  # a tokenizer may refuse special or out-of-range ids
            text = ""
        if text:
            # Quote tokens with surrounding whitespace so ' the' and 'the' stay distinct.
            return text if text.strip() == text else repr(text)
    return f"#{token}"


def sample_tokens(model: nn.Module, tokenizer: Any | None, length: int = 24) -> torch.Tensor:
    """A fixed (1, length) sample: the sample text if the tokenizer can encode it, else a
    seeded random sequence (the same for every run, so maps are comparable across variants)."""
    length = _fit(length, model)
    ids: list[int] = []
    if tokenizer is not None:
        try:
            ids = list(tokenizer.encode(SAMPLE_TEXT))[:length]
        except Exception:  # a task tokenizer (digits, say) may not cover English text
            ids = []
    vocab = _vocab_size(model, tokenizer)
    if len(ids) < 4 or max(ids) >= model.embedding.num_embeddings:
        generator = torch.Generator().manual_seed(0)
        ids = torch.randint(0, vocab, (length,), generator=generator).tolist()
    return torch.tensor([ids], dtype=torch.long)


# ---------------------------------------------------------------------------------------------
# probes


def attention_maps(model: nn.Module, tokens: torch.Tensor, out_dir: Path,
                   tokenizer: Any | None = None) -> ProbeResult:
    """Every layer's and head's attention on one fixed sample, as a layers x heads grid."""
    name, title = "attention_maps", "Attention maps"
    stacks = attention_by_stack(model, tokens)
    labels = [token_text(tokenizer, int(t)) for t in tokens[0]]
    figures = []
    for stack, maps in stacks.items():
        layers, heads = len(maps), maps[0].shape[1]
        cell = 1.9 if layers * heads <= 32 else 1.2
        fig = _figure(cell * heads + 0.6, cell * layers + 0.6)
        axes = np.atleast_2d(fig.subplots(layers, heads, squeeze=False))
        for (li, hi), ax in np.ndenumerate(axes):
            ax.imshow(maps[li][0, hi].float().numpy(), cmap="viridis", vmin=0, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
            if li == 0:
                ax.set_title(f"head {hi}", fontsize=8)
            if hi == 0:
                ax.set_ylabel(f"layer {li}", fontsize=8)
        where = "" if stack == "self" else f" ({stack})"
        fig.suptitle(f"Attention{where}: rows = queries, columns = keys", fontsize=9)
        figures.append(_save(fig, out_dir / f"attention_{stack}.png"))
    sample = " ".join(labels[:12]) + (" …" if len(labels) > 12 else "")
    caption = f"Attention of every layer and head on a fixed {len(labels)}-token sample: {sample}"
    return ProbeResult(name, title, caption, figures)


def learned_position_table(model: nn.Module) -> nn.Embedding | None:
    """The learned absolute position table, or None for any other position variant.

    A relative-bias variant also has a `.table`, but of per-head biases, not d_model vectors;
    checking the width tells the two apart.
    """
    table = getattr(getattr(model, "position", None), "table", None)
    if not isinstance(table, nn.Embedding):
        return None
    if table.embedding_dim != model.embedding.embedding_dim:
        return None
    return table


@torch.no_grad()
def position_similarity(model: nn.Module, out_dir: Path, limit: int = 256) -> ProbeResult:
    """Cosine similarity between learned position embeddings (first `limit` positions)."""
    name, title = "position_similarity", "Learned position embeddings"
    table = learned_position_table(model)
    if table is None:
        kind = type(getattr(model, "position", None)).__name__
        return ProbeResult.skip(
            name, title, f"does not apply: the position variant ({kind}) has no learned table"
        )
    vectors = nn.functional.normalize(table.weight[:limit].float(), dim=-1)
    sim = (vectors @ vectors.T).numpy()
    n = len(sim)
    adjacent = float(np.mean(np.diag(sim, 1))) if n > 1 else float("nan")
    far = [np.diag(sim, k) for k in range(max(1, n // 2), n)]
    distant = float(np.mean(np.concatenate(far))) if far else float("nan")
    fig = _figure(5.2, 4.4)
    _position_heatmap(fig, fig.subplots(), sim, "Cosine similarity of learned position embeddings")
    path = _save(fig, out_dir / "position_similarity.png")
    caption = (
        f"Adjacent positions: mean cosine {adjacent:.2f}; positions at least {n // 2} apart: "
        f"{distant:.2f} (a smooth band near the diagonal means nearby positions look alike)."
    )
    return ProbeResult(name, title, caption, [path],
                       {"adjacent_cos": adjacent, "distant_cos": distant})


#: the ids a tokenizer of the suite reserves for itself (padding, document ends, masking, ...)
SPECIAL_ID_NAMES = ("pad_id", "bos_id", "eos_id", "mask_id", "sep_id", "unk_id")


def ordinary_ids(tokenizer: Any | None, vocab: int) -> torch.Tensor:
    """The ids below `vocab` that the tokenizer does not reserve as special: the symbols a
    model reads as text."""
    special = {getattr(tokenizer, name, None) for name in SPECIAL_ID_NAMES}
    return torch.tensor([i for i in range(vocab) if i not in special])


def induction_targets(tokens: torch.Tensor, eos_id: int | None = None) -> torch.Tensor:
    """(batch, length): for each token that occurred earlier in its document (documents end at
    `eos_id`), the position just after that earlier occurrence, the key an induction head
    attends to; -1 for the others. The tokens with a target are exactly those of the
    repeated-half loss (`val/loss_repeat`)."""
    # Imported here: the split is the recipes' own, and the rest of the probes build without
    # loading the training stack.
    from tzoo.recipes.language_modeling import earlier_occurrence

    earlier = earlier_occurrence(tokens, -1 if eos_id is None else eos_id)
    return torch.where(earlier >= 0, earlier + 1, -1)


def head_induction_scores(maps: Sequence[torch.Tensor], targets: torch.Tensor) -> np.ndarray:
    """(layers, heads): each head's mean attention probability from every query with a target
    (`induction_targets`) to exactly that key. `maps`: per layer, (batch, heads, q, k)."""
    scored = targets >= 0
    keys = targets.clamp(min=0)[:, None, :, None]
    rows = []
    for attention in maps:
        on_target = attention.float().gather(-1, keys.expand(-1, attention.shape[1], -1, 1))
        rows.append(on_target.squeeze(-1).transpose(0, 1)[:, scored].mean(dim=-1))
    return torch.stack(rows).numpy()


def random_repeats(ordinary: torch.Tensor, half: int, batch: int, seed: int) -> torch.Tensor:
    """(batch, 2 * half): random sequences of ordinary ids, each repeated twice; no id twice
    within one copy where there are enough, so "its earlier occurrence" is unambiguous."""
    generator = torch.Generator().manual_seed(seed)
    if len(ordinary) >= half:
        picks = torch.stack([torch.randperm(len(ordinary), generator=generator)[:half]
                             for _ in range(batch)])
    else:
        picks = torch.randint(0, len(ordinary), (batch, half), generator=generator)
    first = ordinary[picks]
    return torch.cat([first, first], dim=1)


@torch.no_grad()
def induction_scores(model: nn.Module, out_dir: Path, *, run_tokens: torch.Tensor | None = None,
                     eos_id: int | None = None, ordinary: torch.Tensor | None = None,
                     half: int = 32, batch: int = 8, seed: int = 0) -> ProbeResult:
    """Induction score per head (Olsson et al. 2022, "In-context Learning and Induction Heads").

    An induction head attends from a token met before to the token that followed its earlier
    occurrence; the score is the mean attention probability on exactly that key. It is read on
    the sequences the model learned from where those repeat themselves (`run_tokens`: the run's
    validation inputs, scored on their repeated tokens, documents ending at `eos_id`): a model
    trained on short repeats of a few symbols under-reads on anything else. Otherwise on random
    sequences of `half` ordinary ids (no special ids: `ordinary`, all ids when None), each
    repeated twice.
    """
    name, title = "induction", "Induction heads"
    targets = induction_targets(run_tokens, eos_id) if run_tokens is not None else None
    on_run_data = targets is not None and bool((targets >= 0).any())
    if on_run_data:
        tokens = run_tokens
        where = (f"on the run's own validation data: the {int((targets >= 0).sum())} tokens of "
                 f"{len(tokens)} windows of {tokens.shape[1]} that occurred earlier in their "
                 "document (the repeated tokens of `val/loss_repeat`)")
    else:
        limit = max_length(model)
        if limit is not None:
            half = min(half, limit // 2)
        if half < 2:
            return ProbeResult.skip(name, title, "does not apply: context too short to repeat")
        if ordinary is None:
            ordinary = torch.arange(int(model.embedding.num_embeddings))
        tokens = random_repeats(ordinary, half, batch, seed)
        targets = induction_targets(tokens)
        where = (f"on {batch} random sequences of {half} of the tokenizer's {len(ordinary)} "
                 "ordinary symbols (no special ids), each repeated twice: the run's data has no "
                 "repeats to score on")
    stacks = attention_by_stack(model, tokens)
    scores_np = head_induction_scores(stacks.get("self") or stacks["decoder"], targets)
    # What a head spreading attention uniformly over the causal prefix would score.
    queries = torch.nonzero(targets >= 0)[:, 1]
    uniform = float(torch.mean(1.0 / (queries.float() + 1)))
    layer, head = np.unravel_index(int(np.argmax(scores_np)), scores_np.shape)
    best = float(scores_np[layer, head])
    fig = _figure(0.7 * scores_np.shape[1] + 2.4, 0.55 * scores_np.shape[0] + 1.6)
    ax = fig.subplots()
    # A fixed 0..1 scale (the score is a probability) keeps variants' heatmaps comparable.
    image = ax.imshow(scores_np, cmap="magma", vmin=0, vmax=1)
    fig.colorbar(image, ax=ax, label="induction score")
    for (li, hi), value in np.ndenumerate(scores_np):
        ax.text(hi, li, f"{value:.2f}", ha="center", va="center", fontsize=7,
                color="white" if value < 0.6 else "black")
    ax.set_xticks(range(scores_np.shape[1]))
    ax.set_yticks(range(scores_np.shape[0]))
    ax.set_xlabel("head")
    ax.set_ylabel("layer")
    ax.set_title("Induction score per head", fontsize=9)
    path = _save(fig, out_dir / "induction.png")
    caption = (
        f"Strongest induction head: layer {layer} head {head}, score {best:.2f} "
        f"(uniform attention would score {uniform:.2f}); attention to the token after each "
        f"token's earlier occurrence, {where}."
    )
    numbers = {"max_induction": best, "uniform_baseline": uniform,
               "mean_induction": float(scores_np.mean()), "scored_tokens": float(len(queries)),
               "on_run_data": float(on_run_data)}
    return ProbeResult(name, title, caption, [path], numbers)


def _query_tokens(tokenizer: Any | None, vocab: int, count: int) -> list[int]:
    """A few tokens worth looking up: common words/characters that are single tokens, topped
    up with evenly spaced ids."""
    chosen: list[int] = []
    if tokenizer is not None:
        for word in ("the", "and", "of", "e", "a", "1", "7", "+", "=", "."):
            try:
                ids = list(tokenizer.encode(word))
            except Exception:
                continue
            if len(ids) == 1 and ids[0] < vocab and ids[0] not in chosen:
                chosen.append(ids[0])
            if len(chosen) == count:
                return chosen
    for token in np.linspace(0, vocab - 1, count + 2, dtype=int)[1:-1]:
        if int(token) not in chosen and len(chosen) < count:
            chosen.append(int(token))
    return chosen


@torch.no_grad()
def nearest_neighbours(model: nn.Module, tokenizer: Any | None = None, *,
                       queries: Sequence[int] | None = None, count: int = 6,
                       k: int = 5) -> ProbeResult:
    """The k nearest token embeddings (cosine) of a few tokens, as a table."""
    name, title = "neighbours", "Nearest neighbours of token embeddings"
    weight = model.embedding.weight.float()
    vocab = weight.shape[0]
    queries = list(queries) if queries is not None else _query_tokens(tokenizer, vocab, count)
    unit = nn.functional.normalize(weight, dim=-1)
    sims = unit[queries] @ unit.T
    sims[torch.arange(len(queries)), torch.tensor(queries)] = -2.0  # not its own neighbour
    top = sims.topk(min(k, vocab - 1), dim=-1)
    rows = []
    for query, values, indices in zip(queries, top.values, top.indices, strict=True):
        neighbours = ", ".join(
            f"`{token_text(tokenizer, int(i))}` {float(v):.2f}"
            for v, i in zip(values, indices, strict=True)
        )
        rows.append([f"`{token_text(tokenizer, query)}`", neighbours])
    mean_top1 = float(top.values[:, 0].mean()) if len(queries) else float("nan")
    caption = (
        f"Cosine nearest neighbours in the input embedding of {len(queries)} tokens; "
        f"mean top-1 similarity {mean_top1:.2f}."
    )
    return ProbeResult(name, title, caption, numbers={"mean_top1_cos": mean_top1},
                       table=(["token", f"{k} nearest (cosine)"], rows))


@torch.no_grad()
def contextual_drift(model: nn.Module, out_dir: Path, *, tokenizer: Any | None = None,
                     target: int | None = None, contexts: int = 8, length: int = 16,
                     seed: int = 0) -> ProbeResult:
    """How one token's vector changes with its context, layer by layer.

    The same token is placed last in several random contexts; per layer we take the mean
    pairwise cosine similarity of its vectors. At the embedding it is 1 (same token, same
    position); the deeper it falls, the more the layers mix context into the token.
    """
    name, title = "contextual_drift", "Contextual drift of one token"
    length = _fit(length, model)
    vocab = int(model.embedding.num_embeddings)
    if target is None:
        target = _query_tokens(tokenizer, vocab, 1)[0]
    label = token_text(tokenizer, target)
    generator = torch.Generator().manual_seed(seed)
    tokens = torch.randint(0, vocab, (contexts, length), generator=generator)
    tokens[:, -1] = target
    try:
        hidden, stack = _hidden_states(model, tokens)
    except TypeError as exc:
        return ProbeResult.skip(name, title, f"does not apply: no hidden states ({exc})")
    pairs = list(itertools.combinations(range(contexts), 2))
    left = torch.tensor([a for a, _ in pairs])
    right = torch.tensor([b for _, b in pairs])
    means, lows, highs = [], [], []
    for h in hidden:
        vecs = nn.functional.normalize(h[:, -1].float(), dim=-1)
        cos = (vecs[left] * vecs[right]).sum(-1)
        means.append(float(cos.mean()))
        lows.append(float(cos.min()))
        highs.append(float(cos.max()))
    layers = np.arange(len(hidden))
    fig = _figure(5.5, 3.6)
    ax = fig.subplots()
    ax.plot(layers, means, marker="o", color="#1f77b4", label="mean over context pairs")
    ax.fill_between(layers, lows, highs, color="#1f77b4", alpha=0.15, lw=0, label="min–max")
    ax.set_xticks(layers, ["emb"] + [str(i) for i in layers[1:]])
    ax.set_xlabel("layer (emb = embedding output)")
    ax.set_ylabel("cosine similarity across contexts")
    ax.set_ylim(min(-0.05, min(lows) - 0.05), 1.05)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title(f"Token '{label}' (#{target}) in {contexts} random contexts", fontsize=9)
    path = _save(fig, out_dir / "contextual_drift.png")
    caption = (
        f"Similarity of token `{label}`'s vector across {contexts} random contexts"
        f"{' (encoder)' if stack == 'encoder' else ''}: "
        f"{means[0]:.2f} at the embedding, {means[-1]:.2f} after the last layer."
    )
    return ProbeResult(name, title, caption, [path],
                       {"cos_embedding": means[0], "cos_last_layer": means[-1]})


@torch.no_grad()
def position_decoding(model: nn.Module, out_dir: Path, *, length: int = 64,
                      sequences: int = 48, seed: int = 0) -> ProbeResult:
    """Where a model keeps the position of a token, even one without position encodings.

    A ridge-regression read-out is fitted from each layer's states to the token's absolute
    position on half of `sequences` random token sequences, and scored (R²) on the other half.
    Position information that appears only after the first layer was inferred by the model
    itself; for a causal model without encodings it can come only from the mask (Haviv et al.
    2022). The heat map is the cosine similarity of the last layer's mean state per position.
    """
    name, title = "position_decoding", "Positions the model can read out"
    length = _fit(length, model)
    vocab = int(model.embedding.num_embeddings)
    generator = torch.Generator().manual_seed(seed)
    # Ids past the special tokens (0..5), so every sequence is ordinary text to the model.
    tokens = torch.randint(min(6, vocab - 1), vocab, (sequences, length), generator=generator)
    hidden, stack = _hidden_states(model, tokens)
    target = torch.arange(length, dtype=torch.float64).repeat(sequences // 2)
    half = sequences // 2
    scores = []
    for states in hidden:
        states = states.double()
        train = states[:half].reshape(-1, states.shape[-1])
        test = states[half: 2 * half].reshape(-1, states.shape[-1])
        mean, scale = train.mean(0), train.std(0).clamp(min=1e-8)
        train, test = (train - mean) / scale, (test - mean) / scale
        design = torch.cat((train, torch.ones(len(train), 1, dtype=torch.float64)), dim=1)
        ridge = 1e-2 * torch.eye(design.shape[1], dtype=torch.float64)
        weights = torch.linalg.solve(design.T @ design + ridge, design.T @ target)
        predicted = torch.cat((test, torch.ones(len(test), 1, dtype=torch.float64)), 1) @ weights
        residual = ((predicted - target) ** 2).sum()
        total = ((target - target.mean()) ** 2).sum()
        scores.append(float(1 - residual / total))
    last = hidden[-1].float().mean(0)
    last = nn.functional.normalize(last - last.mean(0), dim=-1)
    similarity = (last @ last.T).numpy()
    fig = _figure(9.0, 3.8)
    left, right = fig.subplots(1, 2)
    left.plot(range(len(scores)), scores, marker="o")
    left.set_xticks(range(len(scores)), ["emb", *[str(i) for i in range(len(scores) - 1)]])
    left.set_ylim(min(0.0, min(scores)) - 0.05, 1.05)
    left.set_xlabel("layer (emb = token + position embedding)")
    left.set_ylabel("R² of a linear position read-out")
    left.grid(alpha=0.3)
    _position_heatmap(fig, right, similarity, "last layer: mean state per position")
    path = _save(fig, out_dir / "position_decoding.png")
    caption = (
        "Linear read-out of the absolute position"
        f"{' from the encoder' if stack == 'encoder' else ''} "
        f"(held-out R², {sequences // 2} random "
        f"sequences of {length}): {scores[0]:.2f} at the embedding, {max(scores[1:]):.2f} at "
        f"best in a layer, {scores[-1]:.2f} at the last."
    )
    numbers = {"r2_embedding": scores[0], "r2_last": scores[-1], "r2_best": max(scores[1:])}
    return ProbeResult(name, title, caption, [path], numbers)
