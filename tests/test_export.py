"""Exporting a run's student to ONNX and TorchScript: round trips, dynamic batch, metadata, errors."""

from __future__ import annotations

import shutil
import sys
import warnings
import zipfile

import numpy as np
import pytest
import torch
from torch import nn

import kdgan
from kdgan import Player, Splits, Supervised, TensorData, TrainConfig, Trainer
from kdgan.cli import main
from kdgan.config import load_config
from kdgan.data.augment import standardize
from kdgan.data.preprocess import per_feature
from kdgan.deploy.export import ExportError, export_student, read_metadata
from kdgan.deploy.student_file import student_record
from kdgan.errors import ConfigError, DataError
from kdgan.models import build_model
from kdgan.optional import MissingDependencyError, available
from kdgan.training.build import build_trainer, load_student
from kdgan.training.runs import find_config

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


# --------------------------------------------------------------------------- --out inside a run
RUN_FILES = ["last.pt", "best.pt", "student.pt", "config.yaml", "run.json", "final.json", "metrics.jsonl"]


@pytest.mark.parametrize("name", RUN_FILES)
def test_export_refuses_to_replace_a_file_of_a_run(run_dir, tmp_path, name, capsys):
    before = {p.name: p.read_bytes() for p in run_dir.iterdir() if p.is_file()}
    with pytest.raises(ConfigError, match=f"refusing to .*{name}"):
        export_student(run_dir, "torchscript", run_dir / name)
    assert main(["export", str(run_dir), "--out", str(run_dir / name)]) == 2
    assert "kdgan: error: refusing to" in capsys.readouterr().err
    assert {p.name: p.read_bytes() for p in run_dir.iterdir() if p.is_file()} == before


def test_export_refuses_other_existing_files_of_a_run_but_replaces_its_own_exports(run_dir, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(run_dir, run)
    (run / "notes.txt").write_text("mine")
    (run / "plots").mkdir()
    (run / "plots" / "curve.png").write_bytes(b"png")
    for existing in (run / "notes.txt", run / "plots" / "curve.png"):
        with pytest.raises(ConfigError, match="would replace a file of the run"):
            export_student(run, "torchscript", existing)
    assert (run / "notes.txt").read_text() == "mine" and (run / "plots" / "curve.png").read_bytes() == b"png"
    first = export_student(run, "torchscript", run / "student.torchscript.pt")
    assert export_student(run, "torchscript", first) == first  # a re-export replaces the earlier export
    assert export_student(run, "torchscript", run / "copy.torchscript.pt").is_file()


def test_cli_out_with_a_trailing_slash_or_an_existing_folder_writes_student_onnx_inside(run_dir, tmp_path, capsys):
    assert main(["export", str(run_dir), "--format", "torchscript", "--out", f"{tmp_path / 'new'}/"]) == 0
    assert (tmp_path / "new").is_dir() and (tmp_path / "new" / "student.torchscript.pt").is_file()
    (tmp_path / "existing").mkdir()
    assert main(["export", str(run_dir), "--format", "torchscript", "--out", str(tmp_path / "existing")]) == 0
    assert capsys.readouterr().out.split() == [str(tmp_path / "new" / "student.torchscript.pt"),
                                               str(tmp_path / "existing" / "student.torchscript.pt")]
    assert main(["export", str(run_dir), "--out", ""]) == 2
    assert "--out is empty" in capsys.readouterr().err
    (tmp_path / "file").write_text("x")
    with pytest.raises(ConfigError, match="cannot create the output folder .*file"):
        export_student(run_dir, "torchscript", tmp_path / "file" / "m.pt")


@needs_ort
def test_cli_onnx_into_a_new_folder(run_dir, tmp_path, capsys):
    assert main(["export", str(run_dir), "--out", f"{tmp_path / 'onnx'}/"]) == 0
    assert capsys.readouterr().out.strip() == str(tmp_path / "onnx" / "student.onnx")
    assert read_metadata(tmp_path / "onnx" / "student.onnx")["in_shape"] == [1, 8, 8]


@needs_ort
@pytest.mark.parametrize("opset", [1, 6, 0, -3])
def test_an_unsupported_opset_is_refused_before_anything_is_written(run_dir, tmp_path, opset, capsys):
    with pytest.raises(ConfigError, match=f"ONNX opset {opset} is not supported: choose 7 or newer"):
        export_student(run_dir, "onnx", tmp_path / "m.onnx", opset=opset)
    assert main(["export", str(run_dir), "--out", str(tmp_path / "m.onnx"), "--opset", str(opset)]) == 2
    assert f"opset {opset} is not supported" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


@needs_ort
def test_a_failed_export_leaves_no_file_behind(run_dir, tmp_path):
    with pytest.raises(ExportError, match="opset 99"):
        export_student(run_dir, "onnx", tmp_path / "m.onnx", opset=99)
    assert list(tmp_path.iterdir()) == []


# --------------------------------------------------------------------------- preprocessing in the graph
def fake_student(tmp_path, preprocess, in_shape=(1, 8, 8), label_names=None):
    """A student.pt of an mlp with random weights and the given preprocessing."""
    spec = {"name": "mlp", "hidden": [16]}
    network = build_model(spec, in_shape, 10)
    path = tmp_path / "student.pt"
    torch.save(student_record(network.state_dict(), in_shape=in_shape, num_classes=10, preprocess=preprocess,
                              label_names=label_names, spec=spec), path)
    return path, network.eval()


@pytest.mark.parametrize("fmt", [pytest.param("onnx", marks=needs_ort), "torchscript"])
@pytest.mark.parametrize("kind", ["per_image", "per_feature"])
def test_the_exported_graph_takes_raw_inputs(fmt, kind, tmp_path):
    in_shape = (1, 8, 8)
    stats = {"kind": "per_feature", "mean": torch.rand(in_shape), "std": torch.rand(in_shape) + 0.5}
    path, network = fake_student(tmp_path, stats if kind == "per_feature" else "per_image",
                                 label_names=list("abcdefghij"))
    exported = export_student(path, fmt, tmp_path / "out/")
    x = torch.rand(6, *in_shape) * 3
    with torch.no_grad():
        inner = standardize(x) if kind == "per_image" else (x - stats["mean"]) / stats["std"]
        expected = network(inner).numpy()
        assert not np.allclose(network(x).numpy(), expected, atol=1e-3)
    if fmt == "onnx":
        import onnxruntime as ort

        session = ort.InferenceSession(str(exported), providers=["CPUExecutionProvider"])
        (got,) = session.run(["logits"], {"input": x.numpy()})
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            got = torch.jit.load(str(exported))(x).detach().numpy()
    np.testing.assert_allclose(got, expected, atol=1e-4, rtol=0)
    meta = read_metadata(exported)
    assert meta["preprocess"]["kind"] == kind and meta["preprocess"]["in_graph"] is True
    assert meta["label_names"] == list("abcdefghij") and "standardize" not in meta


def test_bad_saved_preprocessing_is_reported(tmp_path):
    path, _ = fake_student(tmp_path, None)
    saved = torch.load(path, weights_only=True)
    saved["preprocess"] = {"kind": "per_feature", "mean": torch.zeros(3), "std": torch.ones(3)}
    torch.save(saved, path)
    with pytest.raises(DataError, match=r"per_feature statistics have shapes \(3,\) and \(3,\) but the network "
                                         r"takes inputs of shape \(1, 8, 8\)"):
        export_student(path, "torchscript", tmp_path / "x.pt")
    saved["preprocess"] = {"kind": "zscore"}
    torch.save(saved, path)
    with pytest.raises(DataError, match="unknown preprocessing .*the kinds are none, per_image, per_feature"):
        export_student(path, "torchscript", tmp_path / "x.pt")


# --------------------------------------------------------------------------- custom students
class OwnNet(nn.Module):
    """A network kdgan cannot rebuild from a spec (the user's own class)."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Flatten(), nn.Linear(64, 24), nn.Tanh())
        self.head = nn.Linear(24, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x)) * 2.0


@pytest.fixture(scope="module")
def api_run(tmp_path_factory, digits):
    """A student trained through the Python API with the user's own network, written by Trainer(out_dir=...)."""
    from sklearn.datasets import load_digits

    torch.manual_seed(0)
    x, y = torch.from_numpy(digits), torch.from_numpy(load_digits().target)
    part = lambda rows: TensorData(x[rows], y[rows], 10)  # noqa: E731
    splits = Splits(part(slice(0, 600)), part(slice(600, 900)), part(slice(900, None)),
                    label_names=[f"digit {d}" for d in range(10)])
    out = tmp_path_factory.mktemp("api")
    trainer = Trainer(Supervised({"student": Player.create(OwnNet())}), splits, TrainConfig(epochs=2, progress=False),
                      out_dir=out)
    trainer.fit()
    return out, trainer.method.players["student"].module


def test_a_custom_student_says_what_is_missing(api_run, tmp_path, capsys):
    run, _ = api_run
    message = "the network in .* is a custom nn.Module that kdgan cannot rebuild: load it in Python with .*module="
    with pytest.raises(DataError, match=message):
        export_student(run, "torchscript", tmp_path / "x.pt")
    np.save(tmp_path / "x.npy", np.zeros((1, 64), np.float32))
    assert main(["predict", str(run), str(tmp_path / "x.npy")]) == 2
    assert "custom nn.Module that kdgan cannot rebuild" in capsys.readouterr().err
    torch.save(OwnNet().state_dict(), tmp_path / "raw.pt")
    with pytest.raises(DataError, match="not a kdgan student.pt .*raw state dict.*kdgan.save_student"):
        kdgan.load_student(tmp_path / "raw.pt")
    with pytest.raises(DataError, match="do not fit the network given"):
        kdgan.load_student(run, module=nn.Linear(64, 10))


@needs_ort
def test_an_api_trained_custom_student_exports_to_onnx(api_run, digits, tmp_path):
    import onnxruntime as ort

    run, trained = api_run
    path = kdgan.export_student(run, "onnx", tmp_path / "own.onnx", module=OwnNet())
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (logits,) = session.run(["logits"], {"input": digits[:9]})
    selected = kdgan.load_student(run, module=OwnNet())
    with torch.no_grad():
        np.testing.assert_allclose(logits, selected(torch.from_numpy(digits[:9])).numpy(), atol=1e-4, rtol=0)
        assert (logits.argmax(1) == trained.eval()(torch.from_numpy(digits[:9])).argmax(1).numpy()).mean() > 0.5
    assert read_metadata(path)["label_names"] == [f"digit {d}" for d in range(10)]


@needs_ort
def test_save_student_keeps_preprocessing_and_names_for_onnx(digits, tmp_path):
    import onnxruntime as ort

    torch.manual_seed(1)
    network = OwnNet().eval()
    train_x = torch.from_numpy(digits[:500]) * 16  # raw 0..16 values, z-scored per pixel for training
    stats = per_feature(train_x)
    saved = kdgan.save_student(network, f"{tmp_path / 'mine'}/", in_shape=(1, 8, 8), preprocess=stats,
                               label_names=[str(d) for d in range(10)])
    assert saved == tmp_path / "mine" / "student.pt"
    assert torch.load(saved, weights_only=True)["preprocess"]["kind"] == "per_feature"  # plain data
    path = kdgan.export_student(saved, "onnx", tmp_path / "mine.onnx", module=OwnNet())
    x = torch.from_numpy(digits[500:520]) * 16
    (logits,) = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"input": x.numpy()})
    with torch.no_grad():
        expected = network((x - stats["mean"]) / stats["std"]).numpy()
    np.testing.assert_allclose(logits, expected, atol=1e-4, rtol=0)
    student = kdgan.open_student(saved, module=OwnNet())
    assert student.num_classes == 10 and student.in_shape == (1, 8, 8) and student.label_names[3] == "3"
    with pytest.raises(DataError, match=r"does not accept inputs of shape \(3, 8, 8\)"):
        kdgan.save_student(network, tmp_path / "bad.pt", in_shape=(3, 8, 8))


def test_torchscript_metadata_is_read_without_loading_the_code(tmp_path, monkeypatch):
    scripted = torch.jit.script(nn.Linear(2, 2))
    path = tmp_path / "model.pt"
    torch.jit.save(scripted, str(path), _extra_files={"kdgan.json": '{"num_classes": 2}'})
    monkeypatch.setattr(torch.jit, "load", lambda *a, **k: pytest.fail("read_metadata loaded the archive's code"))
    assert read_metadata(path) == {"num_classes": 2}
    bare = tmp_path / "bare.pt"
    torch.jit.save(scripted, str(bare))
    assert read_metadata(bare) == {}
    with zipfile.ZipFile(tmp_path / "other.zip", "w") as archive:
        archive.writestr("x/readme.txt", "not a model")
    with pytest.raises(DataError, match="is not a TorchScript model"):
        read_metadata(tmp_path / "other.zip")
