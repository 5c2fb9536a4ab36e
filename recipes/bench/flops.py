"""Parameters and model FLOPs per token.

FLOPs are counted, not estimated: one forward + backward of a real batch runs under
`torch.utils.flop_counter.FlopCounterMode`, which counts every matmul the model actually does
(whatever the FFN, output layer or architecture). On the CPU, PyTorch's fused attention kernel
(`_scaled_dot_product_flash_attention_for_cpu`) has no FLOP formula registered, so it would count
as zero; we register one: the two attention matmuls, 2·2·b·h·q·k·d forward and twice that
backward, over the full q×k score matrix even when causal (the PaLM / nanoGPT convention, so a
causal kernel that skips the upper triangle shows as higher MFU, not fewer model FLOPs).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

aten = torch.ops.aten


def _attention_flops(query_shape, key_shape, *_, **__) -> int:
    batch, heads, q_len, head_dim = query_shape
    k_len = key_shape[-2]
    return 2 * 2 * batch * heads * q_len * k_len * head_dim  # scores and weighted values


def _attention_backward_flops(grad_shape, query_shape, key_shape, *_, **__) -> int:
    return 2 * _attention_flops(query_shape, key_shape)  # four matmuls of the same size


_CPU_ATTENTION = {
    aten._scaled_dot_product_flash_attention_for_cpu: _attention_flops,
    aten._scaled_dot_product_flash_attention_for_cpu_backward: _attention_backward_flops,
}


def count_flops(step: Callable[[], object]) -> int:
    """FLOPs of one call of `step` (e.g. a forward + backward)."""
    with FlopCounterMode(display=False, custom_mapping=_CPU_ATTENTION) as counter:
        step()
    return int(counter.get_total_flops())


def matmul_parameters(model: nn.Module) -> int:
    """Parameters that take part in matmuls: all but lookup tables (learned positions, relative
    biases) and the input embedding when it is not also the output layer."""
    named = list(model.named_parameters())
    tied = not any(name.startswith("output.") for name, _ in named)
    total = 0
    for name, parameter in named:
        lookup = "position" in name and parameter.dim() >= 2
        if lookup or (name.startswith("embedding.") and not tied):
            continue
        total += parameter.numel()
    return total
