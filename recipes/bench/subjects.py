"""One benchmarked variant: its real task, real training batches, optimizer and step functions.

The training step is exactly what the runner trains with, minus the Trainer: the task's own
`loss(batch)` (so masked, prefix and translation objectives cost what they cost), backward,
gradient-norm clipping at `train.grad_clip`, AdamW and its learning-rate schedule from
`recipes/optim.py`. Batches are the experiment's real ones (`prepare_data` and the task's data
module's training loader), drawn before timing so data loading is not in the step time (the
`--overhead` mode measures it separately). Inference uses random token ids of the right shape:
the cost of a dense forward does not depend on the ids, and random ids have no padding.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import lightning as L
import torch
from torch import Tensor, nn

from tzoo.components import EncoderDecoder
from tzoo.recipes import optim
from tzoo.recipes.data import prepare_data
from tzoo.recipes.experiment import set_dotted
from tzoo.recipes.task import Task
from tzoo.recipes.tasks import build_task, task_kind

#: training batches drawn per subject and cycled through (real data, varying padding)
N_BATCHES = 4


def with_overrides(config: dict[str, Any], **dotted: Any) -> dict[str, Any]:
    """A copy of `config` with dotted keys set: with_overrides(c, **{"data.context": 512})."""
    out = copy.deepcopy(config)
    for key, value in dotted.items():
        set_dotted(out, key, value)
    return out


def seeded_task(config: dict[str, Any], seed: int = 0) -> tuple[Task, L.LightningDataModule]:
    """The run's task and data module as the runner builds them (`tasks.build_task`)."""
    torch.manual_seed(seed)
    built = build_task(config, seed=seed)
    return built.task, built.datamodule


def batch_tokens(batch: dict[str, Tensor], pad_id: int) -> int:
    """Tokens the model reads in a training batch: LM inputs, or the non-padding source and
    target-input tokens of a translation batch (padding is computed but is not throughput)."""
    if "tokens" in batch:
        return batch["tokens"][:, :-1].numel()
    return int((batch["source"] != pad_id).sum()) + int((batch["target"][:, :-1] != pad_id).sum())


@dataclass
class Subject:
    """A model in training position, ready to step."""

    name: str
    config: dict[str, Any]
    task: Task
    batches: list[dict[str, Tensor]]
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    tokens_per_batch: list[int]
    steps_taken: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def model(self) -> nn.Module:
        return self.task.model

    @property
    def mean_tokens(self) -> float:
        return sum(self.tokens_per_batch) / len(self.tokens_per_batch)

    def train_step(self, batch: dict[str, Tensor] | None = None, *,
                   after_backward: Callable[[nn.Module], None] | None = None) -> Tensor:
        """Forward, backward, clip, AdamW step, schedule step; returns the (detached) loss.
        `after_backward(model)` sees the raw gradients (the gradient profile reads them)."""
        if batch is None:
            batch = self.batches[self.steps_taken % len(self.batches)]
        self.task.train()
        loss, _ = self.task.loss(batch)
        loss.backward()
        if after_backward is not None:
            after_backward(self.model)
        clip = self.config["train"]["grad_clip"]
        if clip:
            nn.utils.clip_grad_norm_(self.model.parameters(), float(clip))
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.steps_taken += 1
        return loss.detach()

    def forward_backward(self) -> None:
        """One forward + backward, no update (what the FLOP counter runs)."""
        loss, _ = self.task.loss(self.batches[0])
        loss.backward()
        self.optimizer.zero_grad(set_to_none=True)


def build_subject(name: str, config: dict[str, Any], seed: int = 0,
                  n_batches: int = N_BATCHES) -> Subject:
    task, module = seeded_task(config, seed)
    loader = iter(module.train_dataloader())  # the runner's own loader, whatever wraps it
    batches = [next(loader) for _ in range(n_batches)]
    pad_id = prepare_data(config).tokenizer.pad_id
    configured = optim.configure(task.model, config["train"])
    return Subject(name, config, task, batches, configured["optimizer"],
                   configured["lr_scheduler"]["scheduler"],
                   [batch_tokens(b, pad_id) for b in batches])


# ------------------------------------------------------------------------------- inference


@dataclass(frozen=True)
class InferenceShape:
    """Random-token inference: `batch` rows, `source` tokens to encode (encoder-decoder),
    `prompt` tokens prefilled, then `decode` single-token steps."""

    batch: int
    source: int
    prompt: int
    decode: int


def inference_shape(subject: Subject, decode_steps: int = 32) -> InferenceShape:
    """The longest sequence the training configuration uses, split into prompt + decode."""
    config, model = subject.config, subject.model
    batch = int(config["data"]["batch_size"])
    length = task_kind(config).sequence_length(config, model.config.arch)
    limit = getattr(model, "max_positions", None)
    if limit is not None:
        length = min(length, limit)
    decode = min(decode_steps, length // 2)
    source = int(config["data"]["max_len"]) if isinstance(model, EncoderDecoder) else 0
    return InferenceShape(batch, source, length - decode, decode)


def can_decode(model: nn.Module) -> bool:
    """Encoder-only (bidirectional) models score sequences but cannot generate."""
    return isinstance(model, EncoderDecoder) or bool(model.mask.causal)


def random_tokens(model: nn.Module, batch: int, length: int, seed: int = 0) -> Tensor:
    vocab = model.config.vocab_size
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(4, vocab, (batch, length), generator=generator)


class Inference:
    """Prefill and cached decoding of one model on random tokens (eval mode, no grad)."""

    def __init__(self, model: nn.Module, shape: InferenceShape):
        self.model, self.shape = model, shape
        self.encoder_decoder = isinstance(model, EncoderDecoder)
        self.source = random_tokens(model, shape.batch, max(shape.source, 1), seed=1)
        self.prompt = random_tokens(model, shape.batch, shape.prompt, seed=2)
        self.step_tokens = random_tokens(model, shape.batch, max(shape.decode, 1), seed=3)

    @torch.no_grad()
    def prefill(self):
        """Encode (encoder-decoder) and run the prompt through, filling the cache."""
        self.model.eval()
        if self.encoder_decoder:
            memory = self.model.encode(self.source)
            state = self.model.new_state(memory)
            self.model.decode(self.prompt, memory, state=state)
            return state
        if not can_decode(self.model):
            self.model(self.prompt)
            return None
        state = self.model.new_state()
        self.model(self.prompt, state=state)
        return state

    @torch.no_grad()
    def decode(self, state) -> None:
        """`shape.decode` single-token steps continuing from `state`."""
        for i in range(self.shape.decode):
            token = self.step_tokens[:, i : i + 1]
            if self.encoder_decoder:
                self.model.decode(token, state.memory, state=state)
            else:
                self.model(token, state=state)

    @property
    def prefill_tokens(self) -> int:
        return self.shape.batch * (self.shape.prompt + self.shape.source)
