"""Named intervention points on a zoo model, read and changed through PyTorch's own hooks.

    import tzoo
    with tzoo.intervene(model, {"blocks.1.attn.heads": tzoo.ablate(heads=[2])}):
        logits = model(tokens)                    # head 2 of block 1 knocked out
    with tzoo.intervene(model, record=["blocks.0.resid_post"]) as seen:
        model(tokens)
    seen["blocks.0.resid_post"][0]                # (batch, length, d_model), one per forward

Every point is a tensor the model computes anyway. Reading or changing it is a forward hook
(`register_forward_hook` / `register_forward_pre_hook`) on the module that computes or consumes
it, registered on entering `intervene` and removed on leaving: the model's code path is the
same with and without, and outside the `with` block nothing is left behind.

    blocks.{i}.resid_pre      the stream entering block i (batch, length, d_model)
    blocks.{i}.attn.heads     each head's output before the output projection: the projection's
                              input split per head (batch, length, heads, head_dim)
    blocks.{i}.attn.out       the attention's output, after the projection (batch, length, d_model)
    blocks.{i}.attn.sublayer  what the whole attention sublayer (norms and residual included) adds
                              to the stream: its output minus its input; zero = skip the sublayer
    blocks.{i}.cross_attn.*   the same three for cross-attention (an encoder-decoder's decoder)
    blocks.{i}.ffn.out        the feed-forward output (blocks that have one)
    blocks.{i}.ffn.sublayer   what the feed-forward sublayer adds to the stream
    blocks.{i}.resid_post     the stream leaving block i
    final_norm                the stack's output after its final norm, which the output layer reads
                              (a post-LN stack has no final norm: its last block's output)

An encoder-decoder names its two stacks' points `encoder.…` and `decoder.…`.

An *edit* is any callable `value -> tensor | None`: it returns the replacement (same shape), or
None to leave the value as it is (an observer). `ablate`, `patch`, `RunningMean` and
`logit_lens` build the common ones; several edits on one point run in order.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from .errors import ConfigError, unknown_choice

Edit = Callable[[Tensor], Tensor | None]
Heads = int | Sequence[int] | None

#: what a point is, which decides the hook that reads it
KINDS = ("resid_pre", "heads", "out", "sublayer", "resid_post", "final_norm")


@dataclass(frozen=True)
class Point:
    """One named tensor of a model and the module whose hook reaches it."""

    name: str
    kind: str
    module: nn.Module
    #: query heads of an attention point (the heads axis of a `heads` value)
    heads: int | None = None


# ------------------------------------------------------------------------------------- naming


def _stacks(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """(name prefix, stack) for each stack of blocks: one for a language model, two for an
    encoder-decoder."""
    if isinstance(getattr(model, "stack", None), nn.Module):
        return [("", model.stack)]
    encoder, decoder = getattr(model, "encoder", None), getattr(model, "decoder", None)
    if isinstance(encoder, nn.Module) and isinstance(decoder, nn.Module):
        return [("encoder.", encoder), ("decoder.", decoder)]
    raise ConfigError(
        f"{type(model).__name__} is not a transformer-zoo model (no `stack`, nor `encoder` and "
        "`decoder`): intervention points are named on models built by build_model"
    )


def points(model: nn.Module) -> dict[str, Point]:
    """Every intervention point of `model`, by name, in the order a forward pass meets them."""
    found: dict[str, Point] = {}

    def add(name: str, kind: str, module: nn.Module, heads: int | None = None) -> None:
        found[name] = Point(name, kind, module, heads)

    for prefix, stack in _stacks(model):
        for i, block in enumerate(stack.blocks):
            at = f"{prefix}blocks.{i}."
            add(at + "resid_pre", "resid_pre", block)
            sublayers = [("attn", block.self_attention, block.self_attention_sublayer)]
            if block.cross_attention is not None:
                sublayers.append(("cross_attn", block.cross_attention,
                                  block.cross_attention_sublayer))
            for label, attention, sublayer in sublayers:
                add(f"{at}{label}.heads", "heads", attention.out, attention.heads)
                add(f"{at}{label}.out", "out", attention.out)
                add(f"{at}{label}.sublayer", "sublayer", sublayer)
            if block.ffn is not None:
                add(at + "ffn.out", "out", block.ffn)
                add(at + "ffn.sublayer", "sublayer", block.ffn_sublayer)
            add(at + "resid_post", "resid_post", block)
        add(f"{prefix}final_norm", "final_norm", stack)
    return found


def attention_points(model: nn.Module) -> list[str]:
    """The names of every `…heads` point: one per attention layer (cross-attention included)."""
    return [name for name, point in points(model).items() if point.kind == "heads"]


def predicting_stack(model: nn.Module) -> tuple[str, nn.Module]:
    """The stack whose output the output layer reads (a decoder's, or the only one)."""
    return _stacks(model)[-1]


# ------------------------------------------------------------------------------------- edits


def _select(heads: Heads) -> list[int] | None:
    if heads is None:
        return None
    return [int(heads)] if isinstance(heads, int) else [int(h) for h in heads]


def ablate(heads: Heads = None, value: Tensor | None = None) -> Edit:
    """Replace the value (or, on a `heads` point, only the listed heads) by `value`: zero when
    None (zero-ablation), a mean from `RunningMean` for mean-ablation. Zeroing a `sublayer`
    point removes the sublayer: the block runs as if it did not have it."""
    chosen = _select(heads)

    def edit(current: Tensor) -> Tensor:
        fill = torch.zeros((), dtype=current.dtype, device=current.device) if value is None \
            else value.to(current.device, current.dtype)
        if chosen is None:
            return fill.expand_as(current).clone()
        out = current.clone()
        out[..., chosen, :] = fill[..., chosen, :] if fill.dim() >= 2 else fill
        return out

    return edit


def patch(source: Tensor, heads: Heads = None, positions: slice | None = None) -> Edit:
    """Replace the value by `source` (the same point recorded on another input, of the same
    shape): activation patching. `heads` limits it to those heads, `positions` to a slice of
    the sequence axis."""
    chosen = _select(heads)
    where = slice(None) if positions is None else positions

    def edit(current: Tensor) -> Tensor:
        if source.shape != current.shape:
            raise ValueError(f"patch source has shape {tuple(source.shape)}, the point "
                             f"{tuple(current.shape)}")
        out = current.clone()
        if chosen is None:
            out[:, where] = source[:, where]
        else:
            out[:, where, chosen] = source[:, where, chosen]
        return out

    return edit


class RunningMean:
    """An observer edit: the mean of a point over every batch and position it sees (for
    mean-ablation), `mean` of shape (d_model,) or (heads, head_dim)."""

    def __init__(self) -> None:
        self.total: Tensor | None = None
        self.count = 0

    def __call__(self, value: Tensor) -> None:
        flat = value.detach().double().flatten(0, 1)
        summed = flat.sum(0)
        self.total = summed if self.total is None else self.total + summed
        self.count += flat.shape[0]

    @property
    def mean(self) -> Tensor:
        if self.total is None:
            raise RuntimeError("RunningMean saw no value: run the model inside `intervene`")
        return (self.total / self.count).float()


class _Capture:
    """An observer that keeps the last value it saw (for reuse later in the same pass)."""

    def __init__(self) -> None:
        self.value: Tensor | None = None

    def __call__(self, value: Tensor) -> None:
        self.value = value


def logit_lens(model: nn.Module, layer: int) -> dict[str, Edit]:
    """Edits that make the model predict from the stream after block `layer` of its predicting
    stack (-1: the embedding output), through that stack's final norm and the output layer.
    At the last layer this is the model's own prediction, bit for bit."""
    prefix, stack = predicting_stack(model)
    blocks = len(stack.blocks)
    if not -1 <= layer < blocks:
        raise ConfigError(f"logit lens layer {layer} out of range: the stack has {blocks} "
                          f"blocks (allowed: -1 for the embedding, 0..{blocks - 1})")
    captured = _Capture()
    source = f"{prefix}blocks.0.resid_pre" if layer == -1 else f"{prefix}blocks.{layer}.resid_post"
    norm = stack.final_norm

    def read_out(_: Tensor) -> Tensor:
        return captured.value if norm is None else norm(captured.value)

    return {source: captured, f"{prefix}final_norm": read_out}


# ------------------------------------------------------------------------------------- hooks


class Recording(dict):
    """name -> the values a recorded point took, one tensor per forward pass (after edits)."""


def _apply(edits: Sequence[Edit], value: Tensor) -> Tensor | None:
    changed = None
    for edit in edits:
        result = edit(value if changed is None else changed)
        if result is not None:
            changed = result
    return changed


def _hook(point: Point, edits: Sequence[Edit]):
    """The (pre- or forward-) hook of one point, and whether it is a pre-hook."""
    kind = point.kind
    if kind == "resid_pre":
        def pre(module, args):
            new = _apply(edits, args[0])
            return None if new is None else (new, *args[1:])
        return pre, True
    if kind == "heads":
        heads = point.heads

        def split(module, args):
            flat = args[0]
            per_head = flat.view(*flat.shape[:-1], heads, flat.shape[-1] // heads)
            new = _apply(edits, per_head)
            return None if new is None else (new.reshape(flat.shape), *args[1:])
        return split, True
    if kind == "out":
        def out(module, args, output):
            return _apply(edits, output)
        return out, False
    if kind == "sublayer":
        def sublayer(module, args, output):
            stream = args[0]
            write = output - stream
            new = _apply(edits, write)
            if new is None:
                return None
            # (output - input) + input is not always the output in floating point: where the
            # edit left an element as it was, the sublayer's own output is kept bit for bit.
            return torch.where(new == write, output, stream + new)
        return sublayer, False
    # resid_post (a block) and final_norm (a stack) both return (stream, extras)
    def stream(module, args, output):
        new = _apply(edits, output[0])
        return None if new is None else (new, *output[1:])
    return stream, False


@contextmanager
def intervene(model: nn.Module, edits: Mapping[str, Edit | Sequence[Edit]] | None = None, *,
              record: Iterable[str] = ()) -> Iterator[Recording]:
    """Apply `edits` ({point name: edit or [edits]}) to every forward pass of `model` inside the
    block, and record the points named in `record`; yields the `Recording`. Hooks are removed
    on leaving, even on an exception. Unknown names are refused before any hook is set."""
    known = points(model)
    wanted: dict[str, list[Edit]] = {}
    for name, given in (edits or {}).items():
        wanted.setdefault(name, []).extend([given] if callable(given) else list(given))
    recording = Recording()
    for name in record:
        values: list[Tensor] = []
        recording[name] = values
        wanted.setdefault(name, []).append(lambda value, values=values: values.append(
            value.detach()))
    for name in wanted:
        if name not in known:
            raise ConfigError(unknown_choice("intervention point", name, known))
    handles = []
    try:
        for name, chain in wanted.items():
            hook, is_pre = _hook(known[name], chain)
            module = known[name].module
            register = module.register_forward_pre_hook if is_pre else module.register_forward_hook
            handles.append(register(hook))
        yield recording
    finally:
        for handle in handles:
            handle.remove()
