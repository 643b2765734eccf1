"""Distillation methods, one module each, all following :class:`kdgan.methods.base.Method`."""

from kdgan.methods import codis, distn, kdgan, mimic, nagan, noisy, supervised  # noqa: F401  (register)
from kdgan.methods.base import Method
from kdgan.methods.codis import Codis
from kdgan.methods.distn import Distn
from kdgan.methods.kdgan import KDGAN
from kdgan.methods.mimic import Mimic
from kdgan.methods.nagan import NaGAN
from kdgan.methods.noisy import Noisy
from kdgan.methods.registry import METHODS, get_method, register
from kdgan.methods.supervised import Supervised

__all__ = [
    "METHODS", "KDGAN", "Codis", "Distn", "Method", "Mimic", "NaGAN", "Noisy", "Supervised",
    "get_method", "register",
]
