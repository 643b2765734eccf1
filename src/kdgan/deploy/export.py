"""Export a finished run's student to ONNX or TorchScript for deployment.

Only the student is exported: it takes the ordinary input ``x`` alone (never the teacher's
privileged inputs). The exported graph has one input named ``input`` of shape
``(batch, *in_shape)`` with a dynamic batch dimension and one output ``logits`` of shape
``(batch, num_classes)``. The graph takes raw inputs: the preprocessing the run applied to its
data (per-image standardisation, or per-feature z-scoring with the training split's statistics)
is part of it, in front of the network. The run's input shape, label count and names, method,
dataset and preprocessing travel inside the file (ONNX metadata properties; a ``kdgan.json``
extra file in TorchScript).

ONNX uses PyTorch's TorchScript-based exporter (``dynamo=False``): it needs only the ``onnx``
package, while the newer torch.export-based one also needs ``onnxscript`` and writes the weights
to a separate ``.data`` file.
"""

from __future__ import annotations

import inspect
import json
import os
import warnings
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

import kdgan
from kdgan.deploy.student_file import LoadedStudent, open_student
from kdgan.errors import ConfigError, DataError, KDGANError
from kdgan.optional import available, require

Format = Literal["onnx", "torchscript"]
FORMATS: tuple[str, ...] = ("onnx", "torchscript")
SUFFIXES = {"onnx": ".onnx", "torchscript": ".torchscript.pt"}
INPUT_NAME, OUTPUT_NAME = "input", "logits"
METADATA_FILE = "kdgan.json"  # the TorchScript extra file holding the metadata
INSTALL = "pip install kdgan[export]"
VERIFY_BATCHES = (1, 7)  # batch sizes checked against PyTorch after export (dynamic batch dimension)
ATOL = 1e-4
MIN_OPSET = 7  # the oldest ONNX opset PyTorch's exporter writes
# What a run directory holds (kdgan train, --resume, evaluate read them): exports never replace these.
RUN_FILES = frozenset({
    "student.pt", "last.pt", "best.pt", "config.yaml", "run.json", "final.json", "metrics.jsonl", "tensorboard",
})


class ExportError(KDGANError, RuntimeError):
    """The exporter failed, or the exported model does not reproduce the PyTorch outputs."""


def export_student(
    run_dir: str | Path, fmt: Format = "onnx", out: str | Path | None = None, opset: int = 17,
    verify: bool = True, *, module: nn.Module | None = None,
) -> Path:
    """Export the student of ``run_dir`` (a run directory or a student.pt) to ``out`` and return
    the written path.

    ``out`` is a file, or a folder (an existing one, or a path ending with a slash) which receives
    ``student.onnx`` / ``student.torchscript.pt``; by default the file goes into the run directory.
    A path that would replace one of a run's own files is refused. ``module`` is the network for a
    student.pt holding a custom network (see :func:`kdgan.deploy.student_file.save_student`). With ``verify``,
    the written model is loaded back and must match PyTorch within 1e-4 at batch sizes 1 and 7
    (for ONNX this needs ``onnxruntime``; without it only the ONNX checker runs). The file appears
    only once it is complete and verified: a failed export leaves nothing behind.
    """
    if fmt not in FORMATS:
        raise ConfigError(f"unknown export format {fmt!r}; choose one of {', '.join(FORMATS)}")
    if fmt == "onnx":
        if isinstance(opset, bool) or not isinstance(opset, int) or opset < MIN_OPSET:
            raise ConfigError(f"ONNX opset {opset!r} is not supported: choose {MIN_OPSET} or newer (default 17)")
        require("onnx", INSTALL, "ONNX export")  # before loading anything: fail fast
    student = open_student(run_dir, module)
    target = _target(student, fmt, out)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:  # a file in the way, no permission, ...
        raise ConfigError(
            f"cannot create the output folder {target.parent} ({err.strerror}); choose another --out"
        ) from None
    partial = target.with_name(f".{target.name}.partial")
    try:
        if fmt == "onnx":
            _export_onnx(student, partial, opset)
            runner = _onnx_runner(partial) if verify and available("onnxruntime") else None
        else:
            _export_torchscript(student, partial)
            runner = _torchscript_runner(partial) if verify else None
        if runner is not None:
            _check_matches(student, runner, target)
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)
    return target


def metadata(student: LoadedStudent) -> dict[str, Any]:
    """What a deployment needs to know besides the graph: shapes, labels, provenance."""
    return {
        "kdgan_version": kdgan.__version__, "in_shape": list(student.in_shape),
        "num_classes": student.num_classes, "method": student.method, "dataset": student.dataset,
        "input": INPUT_NAME, "output": OUTPUT_NAME,
        "input_range": list(student.input_range) if student.input_range else None,
        "label_names": student.label_names,
        "preprocess": {**student.describe_preprocess(), "in_graph": True},  # the graph takes raw inputs
    }


def read_metadata(path: str | Path) -> dict[str, Any]:
    """The kdgan metadata stored in an exported ``.onnx`` or TorchScript file."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"exported model {path} does not exist")
    if zipfile.is_zipfile(path):  # TorchScript archives are zip files; ONNX files are protobuf
        return _torchscript_metadata(path)
    onnx = require("onnx", INSTALL, "reading ONNX metadata")
    try:
        props = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
    except Exception as err:  # protobuf DecodeError and friends
        raise DataError(f"{path} is neither an ONNX nor a TorchScript model ({err})") from None
    return json.loads(props.get("kdgan", "{}"))


def _torchscript_metadata(path: Path) -> dict[str, Any]:
    """The metadata file of a TorchScript archive, read from the zip as text: the archive's code is
    never loaded, so reading the metadata of a file from elsewhere runs nothing."""
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
            if not any(name.endswith("/constants.pkl") for name in names):
                raise DataError(f"{path} is not a TorchScript model (a zip file without TorchScript's constants.pkl)")
            metadata = [name for name in names if name.split("/", 1)[-1] == f"extra/{METADATA_FILE}"]
            return json.loads(archive.read(metadata[0]).decode("utf-8")) if metadata else {}
    except (zipfile.BadZipFile, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise DataError(f"{path} is not a TorchScript model with kdgan metadata ({err})") from None


# --------------------------------------------------------------------------- writing
def _target(student: LoadedStudent, fmt: str, out: str | Path | None) -> Path:
    """``out`` names a file, or a folder when it exists as one or ends with a slash. Refused: the
    student file itself, and any path in a run directory that names one of its own files (or an
    existing file that is not an earlier export)."""
    name = "student" + SUFFIXES[fmt]
    if out is not None and not str(out).strip():
        raise ConfigError("--out is empty; pass an output file or folder, or leave it out to write into the run")
    target = student.path.parent / name if out is None else Path(out)
    if target.is_dir() or str(out).endswith(("/", os.sep)):
        target = target / name
    if target.resolve() == student.path.resolve():
        raise ConfigError(f"refusing to overwrite the run's checkpoint {student.path}; choose another output path")
    folder = target.parent.resolve()
    runs = [d for d in (folder, *folder.parents) if _is_run_dir(d)]
    replaces_own_file = folder in runs and target.name in RUN_FILES
    replaces_other_file = bool(runs) and target.exists() and not target.name.endswith(tuple(SUFFIXES.values()))
    if replaces_own_file or replaces_other_file:
        raise ConfigError(
            f"refusing to write the export to {target}: it would replace a file of the run in {runs[0]}; "
            f"choose another name (e.g. {target.parent / name}) or a folder outside the run"
        )
    return target


def _is_run_dir(folder: Path) -> bool:
    return any((folder / run_file).exists() for run_file in RUN_FILES)


def _example(student: LoadedStudent, batch: int, seed: int = 0) -> torch.Tensor:
    """Seeded inputs like the training data: for per-feature statistics, drawn around the training
    mean with its standard deviation (a constant feature stays constant, as in real inputs); else
    in the images' range [0, 1]."""
    generator = torch.Generator().manual_seed(seed)
    if student.preprocess["kind"] == "per_feature":
        noise = torch.randn((batch, *student.in_shape), generator=generator)
        return student.preprocess["mean"] + noise * student.preprocess["std"]
    return torch.rand((batch, *student.in_shape), generator=generator)


def _export_onnx(student: LoadedStudent, target: Path, opset: int) -> None:
    onnx = require("onnx", INSTALL, "ONNX export")
    kwargs: dict[str, Any] = {
        "input_names": [INPUT_NAME], "output_names": [OUTPUT_NAME], "opset_version": opset,
        "dynamic_axes": {INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}},
    }
    if "dynamo" in inspect.signature(torch.onnx.export).parameters:
        kwargs["dynamo"] = False  # the TorchScript-based exporter: no onnxscript, one self-contained file
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore", DeprecationWarning)
            torch.onnx.export(student.module, (_example(student, 2),), str(target), **kwargs)
    except Exception as err:  # the exporter raises RuntimeError, OnnxExporterError, ...
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ExportError(f"ONNX export of {student.path} (opset {opset}) failed: {first}") from None
    model = onnx.load(str(target))
    entry = model.metadata_props.add()
    entry.key, entry.value = "kdgan", json.dumps(metadata(student))
    model.producer_name = "kdgan"
    model.producer_version = kdgan.__version__
    try:
        onnx.checker.check_model(model)
    except onnx.checker.ValidationError as err:
        raise ExportError(f"the exported ONNX model {target} is invalid: {err}") from None
    onnx.save(model, str(target))


def _export_torchscript(student: LoadedStudent, target: Path) -> None:
    """Script the student (keeps every batch size by construction); trace it if scripting fails."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # torch.jit is deprecated but still works
        try:
            compiled = torch.jit.script(student.module)
        except Exception:  # a network using Python that TorchScript cannot compile
            try:
                compiled = torch.jit.trace(student.module, _example(student, 2))
            except Exception as err:
                raise ExportError(f"TorchScript export of {student.path} failed: {err}") from None
        torch.jit.save(compiled, str(target), _extra_files={METADATA_FILE: json.dumps(metadata(student))})


# --------------------------------------------------------------------------- checking
Runner = Callable[[np.ndarray], np.ndarray]


def _onnx_runner(target: Path) -> Runner:
    ort = require("onnxruntime", INSTALL, "checking the ONNX export")
    session = ort.InferenceSession(str(target), providers=["CPUExecutionProvider"])
    return lambda x: session.run([OUTPUT_NAME], {INPUT_NAME: x})[0]


def _torchscript_runner(target: Path) -> Runner:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        loaded = torch.jit.load(str(target), map_location="cpu")
    loaded.eval()

    def run(x: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return loaded(torch.from_numpy(x)).numpy()

    return run


def _check_matches(student: LoadedStudent, runner: Runner, target: Path) -> None:
    """The exported model must give PyTorch's logits at several batch sizes."""
    for batch in VERIFY_BATCHES:
        x = _example(student, batch, seed=batch)
        with torch.no_grad():
            expected = student.module(x).numpy()
        got = runner(x.numpy())
        if got.shape != expected.shape:
            raise ExportError(
                f"{target}: a batch of {batch} gives logits of shape {got.shape}, expected {expected.shape}"
            )
        error = float(np.abs(got - expected).max())
        if error > ATOL:
            raise ExportError(f"{target}: outputs differ from PyTorch by up to {error:.2e} (tolerance {ATOL})")
