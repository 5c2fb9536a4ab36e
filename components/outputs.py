"""Output layers: states to logits."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from .families import OUTPUTS


class OutputLayer(nn.Module):
    """Base class: project (…, d_model) states to (…, vocab) logits."""


@OUTPUTS.register("tied")
class TiedOutput(OutputLayer):
    """Reuse the input embedding matrix as the output projection (Press & Wolf 2017, "Using the
    Output Embedding to Improve Language Models")."""

    def __init__(self, embedding: nn.Embedding):
        super().__init__()
        # A plain attribute inside a list, so the embedding is not registered (or saved) twice.
        self._embedding = [embedding]

    def forward(self, x: Tensor) -> Tensor:
        return F.linear(x, self._embedding[0].weight)


@OUTPUTS.register("untied")
class UntiedOutput(OutputLayer):
    """A separate output projection with its own weights."""

    def __init__(self, embedding: nn.Embedding):
        super().__init__()
        vocab, d_model = embedding.weight.shape
        self.projection = nn.Linear(d_model, vocab, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        return self.projection(x)
