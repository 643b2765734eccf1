"""kdgan: knowledge distillation with generative adversarial networks, in plain PyTorch.

The main pieces: :class:`Player` (a network with its optimizer), the methods in
:mod:`kdgan.methods` (``KDGAN``, ``NaGAN``, ``Distn``, ...), and :class:`Trainer`, which runs a
method on :class:`TensorData` splits.
"""

__version__ = "0.1.0"

from kdgan.build import build_trainer  # noqa: E402
from kdgan.config import DataConfig, OptimizerConfig, PlayerConfig, RunConfig, TrainConfig, load_config  # noqa: E402
from kdgan.data import Batch, Splits, TensorData, load_splits  # noqa: E402
from kdgan.engine import RunResult, Trainer  # noqa: E402
from kdgan.export import export_student  # noqa: E402
from kdgan.methods import KDGAN, METHODS, Codis, Distn, Mimic, NaGAN, Noisy, Supervised  # noqa: E402
from kdgan.players import Player  # noqa: E402
from kdgan.student import load_student, open_student, save_student  # noqa: E402

__all__ = [
    "KDGAN", "METHODS", "Batch", "Codis", "DataConfig", "Distn", "Mimic", "NaGAN", "Noisy", "OptimizerConfig",
    "Player", "PlayerConfig", "RunConfig", "RunResult", "Splits", "Supervised", "TensorData", "TrainConfig",
    "Trainer", "build_trainer", "load_config", "load_splits",
    "export_student", "load_student", "open_student", "save_student",
]
