"""The gradient profile: the gradient norm of each block at initialisation and over the first
training steps, for every variant of an experiment: Xiong et al. 2020 ("On Layer Normalization in
the Transformer Architecture"), Fig. 3, per-layer gradient norms of post-LN and pre-LN models at
initialisation, as a standard figure for any ablation.

Each variant (first seed) is built as the runner builds it (`subjects.build_subject`: the run's
task, AdamW and learning-rate schedule), then trained `steps` steps. After each backward pass,
before clipping and the update, the L2 norm of the gradient of each block's parameters is
recorded, so profile 0 is the model at initialisation and profile s the model after s updates.

`tokens="random"` replaces every regular token of the batches by a uniform draw from the
regular vocabulary (special tokens and padding stay): the profile then does not depend on the
corpus, as in an analysis at initialisation; `"data"` keeps the real training batches.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from tzoo.recipes.experiment import Experiment, short_value
from tzoo.recipes.tokenization import N_SPECIAL

from .subjects import Subject, build_subject

TOKEN_CHOICES = ("data", "random")
#: the batch entries that hold token ids (language modelling; translation)
TOKEN_KEYS = ("tokens", "source", "target")


def randomised(batch: dict[str, Any], vocab_size: int,
               generator: torch.Generator) -> dict[str, Any]:
    """`batch` with every regular token id replaced by a uniform draw from the regular ids."""
    out = dict(batch)
    for key in TOKEN_KEYS:
        ids = batch.get(key)
        if isinstance(ids, Tensor):
            draws = torch.randint(N_SPECIAL, vocab_size, ids.shape, generator=generator)
            out[key] = torch.where(ids >= N_SPECIAL, draws.to(ids.dtype), ids)
    return out


def block_labels(model: nn.Module) -> list[str]:
    """'decoder 0', 'decoder 1', ... ('encoder i' first in an encoder-decoder)."""
    return [f"{role} {i}" for role, stack in model.named_stacks() for i in range(len(stack.blocks))]


def block_gradient_norms(model: nn.Module) -> list[float]:
    """The L2 norm of the gradient of all of each block's parameters, in `block_labels` order."""
    norms = []
    for _, stack in model.named_stacks():
        for block in stack.blocks:
            grads = [p.grad.detach().norm() for p in block.parameters() if p.grad is not None]
            norms.append(float(torch.stack(grads).norm()) if grads else 0.0)
    return norms


def profile(subject: Subject, steps: int) -> dict[str, Any]:
    """Gradient norms per block before each of `steps` updates and after the last one."""
    per_step: list[list[float]] = []
    losses: list[float] = []

    def record(model: nn.Module) -> None:
        per_step.append(block_gradient_norms(model))

    for step in range(steps + 1):
        if step < steps:
            losses.append(float(subject.train_step(after_backward=record)))
        else:  # the last profile: measured, not followed by an update
            subject.task.train()
            loss, _ = subject.task.loss(subject.batches[step % len(subject.batches)])
            loss.backward()
            record(subject.model)
            subject.optimizer.zero_grad(set_to_none=True)
            losses.append(float(loss.detach()))
    return {"blocks": block_labels(subject.model), "steps": list(range(steps + 1)),
            "block_grad_norm": per_step, "loss": losses}


def gradient_profiles(experiment: Experiment, *, steps: int = 20, tokens: str = "data",
                      echo: Callable[[str], None] = print) -> dict[str, Any]:
    """The gradient profile of every variant of `experiment` (see the module docstring)."""
    if tokens not in TOKEN_CHOICES:
        raise ValueError(f"tokens must be one of {TOKEN_CHOICES}, got {tokens!r}")
    seed = experiment.seeds[0]
    specs = [run for run in experiment.plan() if run.seed == seed]
    threads = specs[0].config["train"].get("threads")
    if threads:
        torch.set_num_threads(int(threads))
    variants: dict[str, Any] = {}
    for spec in specs:
        name = spec.variant_name
        echo(f"gradient profile of {name}: {steps} steps ...")
        subject = build_subject(name, spec.config, seed, n_batches=min(steps + 1, 8))
        if tokens == "random":
            generator = torch.Generator().manual_seed(seed)
            vocab = subject.model.config.vocab_size
            subject.batches = [randomised(b, vocab, generator) for b in subject.batches]
        model = spec.config["model"]
        variants[name] = {
            "placement": short_value(model.get("placement", "pre")),
            "init": short_value(model.get("init", "gpt2")),
            **profile(subject, steps),
        }
    first = next(iter(variants.values()))
    data = specs[0].config["data"]
    return {
        "experiment": experiment.name,
        "variants": variants,
        "settings": {"steps": steps, "tokens": tokens, "seed": seed,
                     "batch_size": data.get("batch_size"), "context": data.get("context"),
                     "blocks": len(first["blocks"]),
                     "measure": "L2 norm of the gradient of each block's parameters, before "
                                "clipping; profile s is taken before update s+1"},
    }
