"""Two-view splits of real multi-label data, for learning with privileged information.

The student sees one view (``x``); the teacher also sees the other (``privileged``). By default
the student gets the smaller view, so the teacher has clearly more to go on.

What was verified, from the Mulan files in ``shared/data/multilabel``:

* emotions: the 72 attribute names say which features are which. 64 are timbre features
  (``{Mean,Std}_Acc1298_{Mean,Std}_Mem40_{Centroid,Rolloff,Flux,MFCC_0..12}``) and 8 are
  rhythmic beat-histogram features (``BH_LowPeakAmp``, ..., ``BHSUM1..3``). This agrees with
  the usual description of the data (Trohidis et al., ISMIR 2008: 8 rhythmic + 64 timbre), which
  was not re-checked against the paper here.
* yeast: the 103 attributes are named ``Att1``..``Att103`` and the files carry no comments, so
  the file does NOT say which columns are gene expression and which are phylogenetic profile.
  The dataset is usually described as micro-array expression data plus phylogenetic profiles
  (Elisseeff & Weston, NIPS 2001), with 79 + 24 features; neither could be checked against a
  primary source here. The columns' statistics agree with it: Att80..Att102 are all strongly
  right-skewed (skewness 0.98 to 1.85, against |skewness| < 1 for Att1..Att79) and
  correlate with one another more than with Att1..Att79. Att103 is not skewed (-0.34) but
  correlates more with Att80..Att102 (mean |r| 0.13) than with Att1..Att79 (0.04). We therefore
  take Att1..Att79 as the expression view and Att80..Att103 as the phylogenetic view: an
  inferred split, not a documented one.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from kdgan.data.arff import ArffData, read_mulan
from kdgan.data.core import TensorData
from kdgan.errors import DataError

_TIMBRE = [
    f"{a}_Acc1298_{b}_Mem40_{f}"
    for a in ("Mean", "Std")
    for b in ("Mean", "Std")
    for f in ["Centroid", "Rolloff", "Flux", *[f"MFCC_{i}" for i in range(13)]]
]
_RHYTHMIC = [
    "BH_LowPeakAmp", "BH_LowPeakBPM", "BH_HighPeakAmp", "BH_HighPeakBPM", "BH_HighLowRatio",
    "BHSUM1", "BHSUM2", "BHSUM3",
]


@dataclass(frozen=True)
class TwoView:
    """Two disjoint groups of a dataset's feature names; ``student`` names the default student view."""

    dataset: str
    views: dict[str, list[str]]
    student: str
    verified: bool
    note: str


TWO_VIEWS: dict[str, TwoView] = {
    "emotions": TwoView(
        dataset="emotions",
        views={"rhythmic": _RHYTHMIC, "timbre": _TIMBRE},
        student="rhythmic",
        verified=True,
        note="8 rhythmic (beat histogram) vs 64 timbre features, read from the attribute names",
    ),
    "yeast": TwoView(
        dataset="yeast",
        views={
            "phylogenetic": [f"Att{i}" for i in range(80, 104)],
            "expression": [f"Att{i}" for i in range(1, 80)],
        },
        student="phylogenetic",
        verified=False,
        note="Att1-79 micro-array expression vs Att80-103 phylogenetic profile: inferred from the "
        "usual 79 + 24 description and the columns' statistics; the file's names do not say",
    ),
}


def two_view(name: str) -> TwoView:
    """The two-view definition of dataset ``name`` (see the module docstring for its evidence)."""
    if name.lower() not in TWO_VIEWS:
        raise DataError(f"no two-view split is defined for {name!r}; defined: {', '.join(TWO_VIEWS)}")
    return TWO_VIEWS[name.lower()]


def split_views(data: ArffData, spec: TwoView, student: str | None = None) -> TensorData:
    """TensorData with ``x`` = the student's view and ``privileged`` = the other view."""
    student = student or spec.student
    if student not in spec.views:
        raise DataError(f"{spec.dataset} has views {', '.join(spec.views)}; student={student!r} is not one of them")
    position = {n: j for j, n in enumerate(data.feature_names)}
    columns = {}
    for view, names in spec.views.items():
        missing = [n for n in names if n not in position]
        if missing:
            raise DataError(
                f"{data.path}: the {view} view of {spec.dataset} needs attributes {', '.join(missing[:5])}"
                f"{' ...' if len(missing) > 5 else ''} that the file lacks; is this the Mulan {spec.dataset} file?"
            )
        columns[view] = np.array([position[n] for n in names])
    covered = sum(len(names) for names in spec.views.values())
    if covered != len(data.feature_names):
        # yeast's names (Att1..Att103) are generic: scene's Att1..Att294 would match them too
        raise DataError(
            f"{data.path} has {len(data.feature_names)} features but the two views of {spec.dataset} cover "
            f"{covered}; is this the Mulan {spec.dataset} file?"
        )
    other = next(v for v in spec.views if v != student)
    pool = data.to_tensor_data()
    return replace(
        pool,
        x=torch.from_numpy(np.ascontiguousarray(data.x[:, columns[student]])),
        privileged=torch.from_numpy(np.ascontiguousarray(data.x[:, columns[other]])),
    )


def load_two_view_pool(
    name: str, directory: str | Path | None = None, student: str | None = None
) -> tuple[TensorData, TensorData]:
    """(training pool, test set) of a Mulan dataset split into the student's and the teacher's views."""
    spec = two_view(name)
    train, test = read_mulan(spec.dataset, directory)
    return split_views(train, spec, student), split_views(test, spec, student)
