"""kdgan: knowledge distillation with generative adversarial networks, in plain PyTorch.

The main pieces: :class:`Player` (a network with its optimizer), the methods in
:mod:`kdgan.methods` (``KDGAN``, ``NaGAN``, ``Distn``, ...), and :class:`Trainer`, which runs a
method on :class:`TensorData` splits.
"""

__version__ = "0.1.0"

from kdgan.config import RunConfig, TrainConfig, load_config  # noqa: E402
from kdgan.data import Batch, Splits, TensorData  # noqa: E402
from kdgan.engine import RunResult, Trainer  # noqa: E402
from kdgan.methods import KDGAN, METHODS, Codis, Distn, Mimic, NaGAN, Noisy, Supervised  # noqa: E402
from kdgan.players import Player  # noqa: E402

__all__ = [
    "KDGAN", "METHODS", "Batch", "Codis", "Distn", "Mimic", "NaGAN", "Noisy", "Player", "RunConfig",
    "RunResult", "Splits", "Supervised", "TensorData", "TrainConfig", "Trainer", "load_config",
]
