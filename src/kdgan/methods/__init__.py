"""Distillation methods, one module each, all following :class:`kdgan.methods.base.Method`."""

from kdgan.methods import (  # noqa: F401  (register)
    codis,
    dist,
    distn,
    dkd,
    kdgan,
    logit_standardization,
    mimic,
    nagan,
    noisy,
    supervised,
)
from kdgan.methods.base import Method
from kdgan.methods.codis import Codis
from kdgan.methods.dist import DIST
from kdgan.methods.distn import Distn
from kdgan.methods.dkd import DKD
from kdgan.methods.kdgan import KDGAN
from kdgan.methods.logit_standardization import LogitStandardizedKD
from kdgan.methods.mimic import Mimic
from kdgan.methods.nagan import NaGAN
from kdgan.methods.noisy import Noisy
from kdgan.methods.registry import METHODS, get_method, register
from kdgan.methods.supervised import Supervised

__all__ = [
    "DIST", "DKD", "METHODS", "KDGAN", "Codis", "Distn", "LogitStandardizedKD", "Method", "Mimic", "NaGAN",
    "Noisy", "Supervised",
    "get_method", "register",
]
