"""A deployed student takes raw inputs: for a run of each normalisation (none on digits, per_image
on a tiny CIFAR-10, per_feature on a tiny Mulan ARFF set), the test split's raw inputs through
`kdgan predict`, the ONNX export under onnxruntime and load_student give the logits of the
evaluated model (within 1e-4) and the test metrics `kdgan evaluate` reports."""

from __future__ import annotations

import json
import pickle
from dataclasses import replace

import numpy as np
import pytest
import torch

from kdgan.cli import main
from kdgan.config import load_config
from kdgan.data import Splits, TensorData, load_splits
from kdgan.data.cifar import CLASSES as CIFAR_CLASSES
from kdgan.errors import DataError
from kdgan.evaluation.metrics import evaluate_logits
from kdgan.evaluation.ranking import ranking_metrics
from kdgan.optional import available
from kdgan.training.build import build_trainer, load_student, load_weights

needs_onnx = pytest.mark.skipif(
    not (available("onnx") and available("onnxruntime")), reason="needs onnx and onnxruntime (kdgan[export])"
)

SUPERVISED = ["method=supervised", "options={}", "train.progress=false", "train.epochs=2", "seed=3",
              "student.pretrain_epochs=0", "train.eval_test_each_epoch=false"]
ATOL = 1e-4


def write_fake_cifar(folder) -> None:
    """CIFAR-10 pickle batches with 20 images per training batch and 40 test images; each class
    has its own mean colour and brightness, so per-image standardisation changes the inputs."""
    rng = np.random.default_rng(0)
    batches = folder / "cifar-10-batches-py"
    batches.mkdir(parents=True)
    for name, count in [*((f"data_batch_{i}", 20) for i in range(1, 6)), ("test_batch", 40)]:
        labels = np.arange(count) % 10
        base = rng.integers(20, 200, (10, 3, 1))[labels]
        pixels = np.clip(base + rng.integers(0, 50, (count, 3, 1024)), 0, 255).astype(np.uint8)
        with open(batches / name, "wb") as handle:
            pickle.dump({b"data": pixels.reshape(count, 3072), b"labels": labels.tolist()}, handle)


LABELS = ["calm", "happy", "sad"]


def write_fake_emotions(folder) -> None:
    """A Mulan-style emotions set: 6 features on very different scales, 3 labels."""
    rng = np.random.default_rng(1)
    folder.mkdir(parents=True)
    scales = np.array([1e-3, 1.0, 50.0, 1e3, 0.1, 7.0])
    for split, count in (("train", 120), ("test", 40)):
        x = rng.normal(size=(count, 6)) * scales + scales
        y = (x[:, :3] / scales[:3] > 1.0).astype(int)
        y[y.sum(1) == 0, 0] = 1
        header = ["@relation emotions"] + [f"@attribute f{j} numeric" for j in range(6)]
        header += [f"@attribute {name} {{0,1}}" for name in LABELS] + ["@data"]
        rows = [",".join([*(f"{v:.6g}" for v in xr), *map(str, yr)]) for xr, yr in zip(x, y, strict=True)]
        (folder / f"emotions-{split}.arff").write_text("\n".join(header + rows) + "\n")
    labels = "".join(f'<label name="{name}"></label>' for name in LABELS)
    (folder / "emotions.xml").write_text(f'<labels xmlns="http://mulan.sourceforge.net/labels">{labels}</labels>')


CASES = {
    "none": ("digits_kdgan", ["data.n=100", "data.val_size=50"], None),
    "per_image": ("cifar10_kdgan", ["data.n=50", "data.val_size=20",
                                    "student.model={name: lenet, channels: [4, 8], kernel: 5, fc: 16}"],
                  write_fake_cifar),
    "per_feature": ("emotions_kdgan", ["data.name=emotions", "data.n=null", "data.val_size=30"], write_fake_emotions),
}


@needs_onnx
@pytest.mark.parametrize("normalize", list(CASES))
def test_predict_onnx_and_load_student_reproduce_evaluate_on_raw_inputs(normalize, tmp_path, capsys):
    name, overrides, write_data = CASES[normalize]
    overrides = SUPERVISED + overrides
    if write_data is not None:
        write_data(tmp_path / "data")
        overrides.append(f"data.dir={tmp_path / 'data'}")
    run = tmp_path / "run"
    assert main(["train", name, "--out", str(run), *sum((["--set", o] for o in overrides), [])]) == 0
    capsys.readouterr()
    config = load_config(run / "config.yaml")
    assert (config.data.normalize or "none") == normalize

    assert main(["evaluate", str(run)]) == 0
    evaluated = json.loads(capsys.readouterr().out)["test"]

    # The evaluated model's logits on the normalised test split (what training and evaluate see) ...
    trainer = build_trainer(config)
    model = trainer.method.players["student"].module.eval()
    model.load_state_dict(load_weights(run / "student.pt"))
    test = trainer.splits.test
    with torch.no_grad():
        reference = model(test.x)
    # ... and the raw test inputs a user would hand to the deployed student.
    raw_splits = load_splits(replace(config.data, normalize=None), config.seed)
    raw = raw_splits.test
    saved = torch.load(run / "student.pt", weights_only=True)["preprocess"]  # plain data, no code
    assert saved["kind"] == normalize
    if normalize == "per_feature":  # the statistics of the labelled training split's student inputs
        assert torch.allclose(saved["mean"], raw_splits.train.x.mean(0))
        assert torch.allclose(saved["std"], raw_splits.train.x.std(0))
    assert torch.equal(raw.y, test.y)
    if normalize != "none":
        assert not torch.allclose(raw.x, test.x, atol=1e-2)  # the normalisation does change the inputs

    with torch.no_grad():
        loaded = load_student(run)(raw.x)
    np.testing.assert_allclose(loaded.numpy(), reference.numpy(), atol=ATOL, rtol=0)

    assert main(["export", str(run), "--out", f"{tmp_path / 'exported'}/"]) == 0
    assert capsys.readouterr().out.strip() == str(tmp_path / "exported" / "student.onnx")
    import onnxruntime as ort

    session = ort.InferenceSession(str(tmp_path / "exported" / "student.onnx"), providers=["CPUExecutionProvider"])
    (onnx_logits,) = session.run(["logits"], {"input": raw.x.numpy()})
    np.testing.assert_allclose(onnx_logits, reference.numpy(), atol=ATOL, rtol=0)

    np.save(tmp_path / "test.npy", raw.x.numpy())
    labels = test.num_classes
    assert main(["predict", str(run), str(tmp_path / "test.npy"), "--json", "--top-k", str(labels)]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["preprocess"]["kind"] == normalize
    scores = np.zeros((len(raw), labels))
    for row in report["predictions"]:
        for entry in row["top_k"]:
            scores[row["index"], entry["class"]] = entry["score"]
    np.testing.assert_allclose(scores, torch.softmax(reference, -1).numpy(), atol=1e-5, rtol=0)

    for logits in (reference, loaded, torch.from_numpy(onnx_logits), torch.from_numpy(scores)):
        metrics = {k: float(v) for k, v in evaluate_logits(logits, raw).items()}
        assert metrics == pytest.approx(evaluated, abs=1e-6)
    top1 = torch.tensor([row["prediction"] for row in report["predictions"]])
    if test.multilabel:  # P@1 of predict's top labels is the evaluated model's P@1
        expected_p1 = float(ranking_metrics(reference, test.y, ks=(1,))["p@1"])
        assert float(raw.y[torch.arange(len(raw)), top1].mean()) == pytest.approx(expected_p1, abs=1e-6)
        assert report["label_names"] == LABELS
    else:
        assert float((top1 == raw.y).float().mean()) == pytest.approx(evaluated["accuracy"], abs=1e-6)
        expected_names = [str(d) for d in range(10)] if normalize == "none" else list(CIFAR_CLASSES)
        assert report["label_names"] == expected_names  # the reader's names, saved in student.pt


def test_splits_keep_label_names_and_preprocessing_and_check_the_names():
    x, y = torch.rand(6, 2), torch.tensor([0, 1, 2, 0, 1, 2])
    part = TensorData(x, y, 3)
    splits = Splits(part, part, part, label_names=["a", "b", "c"], preprocess={"kind": "per_image"})
    moved = splits.to("cpu")
    assert moved.label_names == ["a", "b", "c"] and moved.preprocess == {"kind": "per_image"}
    with pytest.raises(DataError, match="label_names has 2 names but the data has 3 labels"):
        Splits(part, part, part, label_names=["a", "b"])
