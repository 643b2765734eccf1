"""A network fed two views: the student's input and the teacher-only (privileged) input."""

from __future__ import annotations

import torch
from torch import Tensor, nn


class TwoView(nn.Module):
    """Flattens both views and concatenates them before ``inner``; only teachers (and, if asked,
    the discriminator) are built this way, so the deployed student never needs the second view."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x: Tensor, privileged: Tensor | None = None) -> Tensor:
        if privileged is None:
            raise ValueError("this network was built for two views: pass the privileged input too")
        return self.inner(torch.cat([x.flatten(1), privileged.flatten(1)], dim=1))
