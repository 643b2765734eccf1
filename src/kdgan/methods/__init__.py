"""Distillation methods, one module each, all following :class:`kdgan.methods.base.Method`."""

# Importing a method's module registers it; the order here is the order of `kdgan methods` and of
# every comparison's rows: the paper's methods in its tables' order, then the later baselines.
# isort: off
from kdgan.methods import supervised, mimic, distn, noisy, codis, nagan, kdgan  # noqa: F401
from kdgan.methods import dkd, dist, logit_standardization  # noqa: F401
# isort: on
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
