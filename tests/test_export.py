"""Exporting a run's student to ONNX and TorchScript: round trips, dynamic batch, metadata, errors."""

from __future__ import annotations

import sys
import warnings

import numpy as np
import pytest
import torch

from kdgan.build import build_trainer, load_student
from kdgan.config import load_config
from kdgan.errors import ConfigError
from kdgan.export import export_student, read_metadata
from kdgan.optional import MissingDependencyError, available
from kdgan.runs import find_config

needs_ort = pytest.mark.skipif(
    not (available("onnx") and available("onnxruntime")),
    reason="onnx and onnxruntime are not installed (pip install kdgan[export])",
)


@pytest.fixture(scope="module")
def digits():
    from sklearn.datasets import load_digits

    return (load_digits().data / 16.0).astype(np.float32).reshape(-1, 1, 8, 8)


def reference(run_dir, x: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return load_student(run_dir)(torch.from_numpy(x)).numpy()


@needs_ort
def test_onnx_round_trip_matches_pytorch_on_real_digits(run_dir, digits, tmp_path):
    import onnxruntime as ort

    path = export_student(run_dir, "onnx", tmp_path / "student.onnx")
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["input"]
    assert [o.name for o in session.get_outputs()] == ["logits"]
    assert session.get_inputs()[0].shape[1:] == [1, 8, 8]
    assert isinstance(session.get_inputs()[0].shape[0], str)  # a symbolic (dynamic) batch dimension
    for batch in (1, 7, len(digits)):
        x = digits[:batch]
        (logits,) = session.run(["logits"], {"input": x})
        assert logits.shape == (batch, 10)
        np.testing.assert_allclose(logits, reference(run_dir, x), atol=1e-4, rtol=0)


@needs_ort
def test_onnx_carries_the_run_metadata_and_opset(run_dir, tmp_path):
    import onnx

    path = export_student(run_dir, "onnx", tmp_path / "m.onnx", opset=13)
    assert onnx.load(str(path)).opset_import[0].version == 13
    meta = read_metadata(path)
    assert meta["in_shape"] == [1, 8, 8] and meta["num_classes"] == 10
    assert meta["method"] == "kdgan" and meta["dataset"] == "digits" and meta["input_range"] == [0.0, 1.0]


def test_torchscript_round_trip_with_dynamic_batch(run_dir, digits, tmp_path):
    path = export_student(run_dir, "torchscript", tmp_path / "student.ts.pt")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        loaded = torch.jit.load(str(path))
    for batch in (1, 7):
        x = digits[10 : 10 + batch]
        with torch.no_grad():
            logits = loaded(torch.from_numpy(x)).numpy()
        assert logits.shape == (batch, 10)
        np.testing.assert_allclose(logits, reference(run_dir, x), atol=1e-5, rtol=0)
    assert read_metadata(path)["num_classes"] == 10


def test_output_folder_and_default_location(run_dir, tmp_path):
    folder = tmp_path / "exports"
    folder.mkdir()
    assert export_student(run_dir, "torchscript", folder) == folder / "student.torchscript.pt"
    assert export_student(run_dir, "torchscript", f"{tmp_path}/new/") == tmp_path / "new" / "student.torchscript.pt"
    default = export_student(run_dir, "torchscript")
    assert default == run_dir / "student.torchscript.pt" and default.is_file()


def test_missing_run_dir_and_student_are_named(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        export_student(tmp_path / "nope", "torchscript", tmp_path / "x.pt")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="holds no student.pt"):
        export_student(tmp_path / "empty", "torchscript", tmp_path / "x.pt")


def test_bad_format_and_overwriting_the_checkpoint_are_refused(run_dir):
    with pytest.raises(ConfigError, match="unknown export format 'tflite'; choose one of onnx, torchscript"):
        export_student(run_dir, "tflite")
    with pytest.raises(ConfigError, match="refusing to overwrite"):
        export_student(run_dir, "torchscript", run_dir / "student.pt")


def test_onnx_without_the_onnx_package_says_what_to_install(run_dir, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnx", None)  # makes `import onnx` fail
    with pytest.raises(MissingDependencyError, match=r"pip install kdgan\[export\]"):
        export_student(run_dir, "onnx", tmp_path / "m.onnx")


@pytest.mark.parametrize("fmt", [pytest.param("onnx", marks=needs_ort), "torchscript"])
def test_convolutional_student_keeps_a_dynamic_batch(fmt, digits, tmp_path):
    overrides = ["train.progress=false", "train.epochs=1", "method=supervised", "options={}",
                 "student.pretrain_epochs=0"]
    config = load_config(find_config("digits_kdgan"), overrides)
    config.student.model = {"name": "lenet", "channels": [4, 8], "kernel": 3, "fc": 16}
    build_trainer(config, out_dir=tmp_path / "run").fit()
    path = export_student(tmp_path / "run", fmt, tmp_path / "out/")  # verify=True checks batches 1 and 7
    if fmt == "onnx":
        import onnxruntime as ort

        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        (logits,) = session.run(None, {"input": digits[:5]})
        np.testing.assert_allclose(logits, reference(tmp_path / "run", digits[:5]), atol=1e-4, rtol=0)
