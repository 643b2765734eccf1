"""Predicting with a run's student from IDX files, images and .npy arrays."""

from __future__ import annotations

import gzip
import json

import numpy as np
import pytest
import torch
from PIL import Image

from kdgan.data import LABEL_NAMES
from kdgan.deploy.predict import fit_shape, format_json, format_table, predict, scores_from_logits
from kdgan.deploy.student_file import open_student, student_record
from kdgan.errors import ConfigError, DataError
from kdgan.training.build import load_student


@pytest.fixture(scope="module")
def digits():
    """The first 40 scikit-learn digits: raw values 0..16 (N, 8, 8) and labels."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    return bunch.images[:40], bunch.target[:40]


def as_bytes(raw: np.ndarray) -> np.ndarray:
    """Digits (0..16) as 8-bit pixels, as an image or IDX file would hold them."""
    return np.round(raw * 255.0 / 16.0).astype(np.uint8)


def student_scores(run_dir, x: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        logits = load_student(run_dir)(torch.from_numpy(x.astype(np.float32).reshape(-1, 1, 8, 8)))
    return scores_from_logits(logits).numpy()


def write_idx(path, array: np.ndarray) -> None:
    header = bytes([0, 0, 8, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "wb") as handle:
        handle.write(header + array.astype(np.uint8).tobytes())


def test_predictions_on_real_digits_match_the_students_argmax(run_dir, digits, tmp_path):
    raw, labels = digits
    np.save(tmp_path / "digits.npy", (raw / 16.0).astype(np.float32)[:, None])  # (N, 1, 8, 8) in [0, 1]
    rows = predict(run_dir, tmp_path / "digits.npy", top_k=3)
    expected = student_scores(run_dir, raw / 16.0)
    assert [r["prediction"] for r in rows] == expected.argmax(1).tolist()
    assert [r["input"] for r in rows[:2]] == ["digits.npy[0]", "digits.npy[1]"]
    np.testing.assert_allclose([r["score"] for r in rows], expected.max(1), atol=1e-6)
    assert np.mean([r["prediction"] for r in rows] == labels) > 0.5  # the student has learned something


def test_top_k_is_ordered_and_scores_are_a_softmax(run_dir, digits, tmp_path):
    raw, _ = digits
    np.save(tmp_path / "d.npy", raw[:5] / 16.0)
    rows = predict(run_dir, tmp_path / "d.npy", top_k=10)
    expected = student_scores(run_dir, raw[:5] / 16.0)
    for row, reference in zip(rows, expected, strict=True):
        scores = [entry["score"] for entry in row["top_k"]]
        assert scores == sorted(scores, reverse=True)
        assert sorted(entry["class"] for entry in row["top_k"]) == list(range(10))
        assert sum(scores) == pytest.approx(1.0, abs=1e-5)
        for entry in row["top_k"]:
            assert entry["score"] == pytest.approx(float(reference[entry["class"]]), abs=1e-6)
    top2 = predict(run_dir, tmp_path / "d.npy", top_k=2)
    assert [r["top_k"] for r in top2] == [r["top_k"][:2] for r in rows]


@pytest.mark.parametrize("name", ["images-idx3-ubyte", "images-idx3-ubyte.gz"])
def test_idx_images_are_scaled_like_training(run_dir, digits, tmp_path, name):
    pixels = as_bytes(digits[0])
    write_idx(tmp_path / name, pixels)
    rows = predict(run_dir, tmp_path / name)
    assert len(rows) == len(pixels) and rows[0]["input"] == f"{name}[0]"
    expected = student_scores(run_dir, pixels / 255.0)
    assert [r["prediction"] for r in rows] == expected.argmax(1).tolist()
    np.testing.assert_allclose([r["score"] for r in rows], expected.max(1), atol=1e-6)


def test_idx_of_another_size_or_a_label_file_is_refused(run_dir, tmp_path):
    write_idx(tmp_path / "mnist-idx3-ubyte", np.zeros((3, 28, 28), np.uint8))
    with pytest.raises(DataError, match=r"shape \(28, 28\) per example .* but the model takes \(1, 8, 8\)"):
        predict(run_dir, tmp_path / "mnist-idx3-ubyte")
    write_idx(tmp_path / "labels-idx1-ubyte", np.zeros(3, np.uint8))
    with pytest.raises(DataError, match="1-d IDX file"):
        predict(run_dir, tmp_path / "labels-idx1-ubyte")


def test_png_files_and_folders(run_dir, digits, tmp_path):
    pixels = as_bytes(digits[0][:6])
    folder = tmp_path / "pngs"
    folder.mkdir()
    for i, image in enumerate(pixels):
        Image.fromarray(image, mode="L").save(folder / f"digit{i}.png")
    (folder / "notes.txt").write_text("not an image")
    rows = predict(run_dir, folder)
    assert [r["input"] for r in rows] == [f"digit{i}.png" for i in range(6)]
    expected = student_scores(run_dir, pixels / 255.0)
    assert [r["prediction"] for r in rows] == expected.argmax(1).tolist()
    single = predict(run_dir, folder / "digit3.png")
    assert single[0]["prediction"] == rows[3]["prediction"] and single[0]["input"] == "digit3.png"


def test_images_are_resized_grayscaled_and_inverted_to_the_model_input(run_dir, digits, tmp_path):
    pixels = as_bytes(digits[0][:4])
    big = np.kron(pixels, np.ones((4, 4), np.uint8))  # 32x32: box-downsampling gives the 8x8 back
    for i, image in enumerate(big):
        Image.fromarray(np.repeat(image[..., None], 3, axis=2), mode="RGB").save(tmp_path / f"rgb{i}.png")
        Image.fromarray(255 - image, mode="L").save(tmp_path / f"dark_on_light{i}.png")
    expected = student_scores(run_dir, pixels / 255.0).argmax(1).tolist()
    rgb = predict(run_dir, [tmp_path / f"rgb{i}.png" for i in range(4)])
    assert [r["prediction"] for r in rgb] == expected
    inverted = predict(run_dir, [tmp_path / f"dark_on_light{i}.png" for i in range(4)], invert=True)
    assert [r["prediction"] for r in inverted] == expected
    Image.fromarray(big[0], mode="L").save(tmp_path / "photo.jpg", quality=95)  # lossy: only check it is read
    assert predict(run_dir, tmp_path / "photo.jpg", top_k=3)[0]["input"] == "photo.jpg"


def test_npy_layouts_and_scaling(run_dir, digits, tmp_path):
    raw, _ = digits
    reference = [r["prediction"] for r in predict(run_dir, _save(tmp_path / "ref.npy", raw[:4, None] / 16.0))]
    assert [r["prediction"] for r in predict(run_dir, _save(tmp_path / "flat.npy", raw[:4].reshape(4, 64) / 16))] \
        == reference
    assert predict(run_dir, _save(tmp_path / "one.npy", raw[2] / 16.0))[0]["prediction"] == reference[2]
    assert [r["prediction"] for r in predict(run_dir, _save(tmp_path / "raw.npy", raw[:4]), scale=16)] == reference
    uint8 = predict(run_dir, _save(tmp_path / "u8.npy", as_bytes(raw[:4])))  # 8-bit arrays are divided by 255
    assert [r["prediction"] for r in uint8] == student_scores(run_dir, as_bytes(raw[:4]) / 255.0).argmax(1).tolist()


def _save(path, array):
    np.save(path, array)
    return path


def test_values_outside_the_training_range_are_refused_with_the_fix(run_dir, digits, tmp_path):
    with pytest.raises(DataError, match=r"range from 0 to 16 .* trained on inputs in \[0, 1\]; pass scale=N"):
        predict(run_dir, _save(tmp_path / "raw.npy", digits[0][:3]))


def test_shape_mismatch_names_both_shapes(run_dir, tmp_path):
    with pytest.raises(DataError, match=r"have shape \(28, 28\) per example .* the model takes \(1, 8, 8\)"):
        predict(run_dir, _save(tmp_path / "mnist.npy", np.zeros((2, 28, 28), np.float32)))
    with pytest.raises(DataError, match=r"have shape \(10,\) per example"):
        predict(run_dir, _save(tmp_path / "rows.npy", np.zeros((2, 10), np.float32)))


def test_bad_inputs_and_arguments(run_dir, tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        predict(run_dir, tmp_path / "missing.npy")
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(DataError, match="cannot tell the format"):
        predict(run_dir, tmp_path / "notes.txt")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="holds no images"):
        predict(run_dir, tmp_path / "empty")
    with pytest.raises(ConfigError, match="top_k must be between 1 and the model's 10 labels"):
        predict(run_dir, _save(tmp_path / "ok.npy", np.zeros((1, 64), np.float32)), top_k=11)
    with pytest.raises(ConfigError, match="holds no student.pt"):
        predict(tmp_path / "empty", tmp_path / "ok.npy")


def test_fit_shape_accepts_the_documented_layouts():
    assert fit_shape(np.zeros((5, 8, 8)), (1, 8, 8), "x").shape == (5, 1, 8, 8)
    assert fit_shape(np.zeros((5, 64)), (1, 8, 8), "x").shape == (5, 1, 8, 8)
    assert fit_shape(np.zeros((8, 8)), (1, 8, 8), "x").shape == (1, 1, 8, 8)
    channels_last = np.arange(2 * 4 * 4 * 3).reshape(2, 4, 4, 3)
    fitted = fit_shape(channels_last, (3, 4, 4), "x")
    assert fitted.shape == (2, 3, 4, 4) and fitted[1, 2, 3, 0] == channels_last[1, 3, 0, 2]


def test_table_and_json_output(run_dir, digits, tmp_path):
    rows = predict(run_dir, _save(tmp_path / "d.npy", digits[0][:3] / 16.0), top_k=2)
    table = format_table(rows).splitlines()
    assert table[0].split() == ["input", "top1", "top2"] and len(table) == 4
    assert table[1].startswith("d.npy[0]") and f"({rows[0]['score']:.4f})" in table[1]
    report = json.loads(format_json(rows, open_student(run_dir)))
    assert report["predictions"] == rows and report["preprocess"] == {"kind": "none"}
    assert report["label_names"] == [str(d) for d in range(10)]
    assert format_table(predict(run_dir, tmp_path / "d.npy")).splitlines()[0].split() == ["input", "prediction"]


def test_a_trained_run_saves_its_label_names_and_predict_prints_them(run_dir, digits, tmp_path):
    assert torch.load(run_dir / "student.pt", weights_only=True)["label_names"] == [str(d) for d in range(10)]
    rows = predict(run_dir, _save(tmp_path / "d.npy", digits[0][:3] / 16.0), top_k=2)
    assert all(e["name"] == str(e["class"]) for row in rows for e in row["top_k"])
    assert format_table(rows).splitlines()[1].split()[1:3] == [str(rows[0]["prediction"])] * 2  # "3 3 (0.9...)"


def fake_run(path, dataset: str, in_shape=(1, 28, 28), preprocess=None, label_names=None, legacy_config=None):
    """A student.pt as the engine writes it, with random weights (no training needed). With
    ``legacy_config`` it is written as kdgan did before preprocessing and label names were saved."""
    from kdgan.models import build_model

    spec = {"name": "mlp", "hidden": [16]}
    module = build_model(spec, in_shape, 10)
    path.mkdir()
    record = student_record(module.state_dict(), in_shape=in_shape, num_classes=10, preprocess=preprocess,
                            label_names=label_names, spec=spec)
    record["run_info"] = {"config": {"method": "supervised", "data": {"name": dataset, **(legacy_config or {})}}}
    if legacy_config is not None:
        record["run_info"]["model"] = record.pop("model")
        del record["preprocess"], record["label_names"]
    torch.save(record, path / "student.pt")
    return path


def test_class_names_and_28x28_idx_of_a_fashion_mnist_run(tmp_path):
    names = LABEL_NAMES["fashion-mnist"]
    run = fake_run(tmp_path / "fashion", "fashion-mnist", label_names=names)
    write_idx(tmp_path / "t10k-images-idx3-ubyte", np.random.default_rng(0).integers(0, 256, (3, 28, 28)))
    rows = predict(run, tmp_path / "t10k-images-idx3-ubyte", top_k=2)
    assert len(rows) == 3 and all(e["name"] == names[e["class"]] for row in rows for e in row["top_k"])
    assert rows[0]["top_k"][0]["name"] in format_table(rows)


def test_saved_label_names_win_and_runs_without_names_print_indices(tmp_path):
    own = [f"tag{i}" for i in range(10)]
    rows = predict(fake_run(tmp_path / "own", "fashion-mnist", label_names=own), _save(tmp_path / "x.npy",
                   np.zeros((1, 784), np.float32)), top_k=10)
    assert sorted(e["name"] for e in rows[0]["top_k"]) == sorted(own)
    unnamed = predict(fake_run(tmp_path / "unnamed", "custom"), tmp_path / "x.npy")
    assert "name" not in unnamed[0]["top_k"][0]
    with pytest.raises(DataError, match="label_names has 3 names but the network has 10 outputs"):
        student_record({}, in_shape=(4,), num_classes=10, label_names=["a", "b", "c"])


def _expected_scores(student, x):
    with torch.no_grad():
        return scores_from_logits(student.module.network(x))


@pytest.mark.parametrize("legacy", [None, {"normalize": "per_image"}, {"standardize": True}])
def test_per_image_runs_get_standardized_inputs(tmp_path, legacy):
    """Saved as data (today) or only named in the config (files of older kdgan versions)."""
    run = fake_run(tmp_path / "std", "mnist", preprocess="per_image", legacy_config=legacy)
    student = open_student(run)
    assert student.preprocess == {"kind": "per_image"}
    x = torch.rand(4, 1, 28, 28)
    out = student.module.preprocess(x)
    assert torch.allclose(out.mean(dim=(1, 2, 3)), torch.zeros(4), atol=1e-5)
    assert torch.allclose(out.std(dim=(1, 2, 3), correction=0), torch.ones(4), atol=1e-4)
    np.save(tmp_path / "x.npy", x.numpy())
    rows = predict(run, tmp_path / "x.npy", top_k=10)
    expected = _expected_scores(student, out)
    raw = _expected_scores(student, x)
    assert not torch.allclose(expected, raw, atol=1e-3)  # standardising matters for this network
    for row, reference in zip(rows, expected, strict=True):
        assert row["prediction"] == int(reference.argmax())
        assert row["score"] == pytest.approx(float(reference.max()), abs=1e-6)


def test_per_feature_runs_apply_the_saved_statistics(tmp_path):
    mean, std = torch.linspace(-1, 1, 20), torch.linspace(0.5, 2, 20)
    spec = {"kind": "per_feature", "mean": mean, "std": std}
    run = fake_run(tmp_path / "feat", "emotions", in_shape=(20,), preprocess=spec)
    student = open_student(run)
    x = torch.randn(5, 20) * 3
    rows = predict(run, _save(tmp_path / "x.npy", x.numpy()), top_k=10)
    expected = _expected_scores(student, (x - mean) / std)
    assert [r["prediction"] for r in rows] == expected.argmax(1).tolist()
    np.testing.assert_allclose([r["score"] for r in rows], expected.max(1).values, atol=1e-6)
    assert student.describe_preprocess()["features"] == 20


def test_older_per_feature_runs_without_statistics_are_refused(tmp_path):
    run = fake_run(tmp_path / "old", "emotions", in_shape=(20,), legacy_config={"normalize": "per_feature"})
    with pytest.raises(DataError, match="per_feature normalisation but does not hold the training statistics"):
        open_student(run)


def test_student_files_without_their_network_record_say_what_to_do(tmp_path):
    torch.save({"role": "student", "state_dict": {}, "run_info": {}}, tmp_path / "old.pt")
    with pytest.raises(DataError, match="does not record its input shape .*kdgan.save_student"):
        open_student(tmp_path / "old.pt")
    torch.save([1, 2], tmp_path / "list.pt")
    with pytest.raises(DataError, match="not a kdgan student.pt"):
        predict(tmp_path / "list.pt", tmp_path / "x.npy")
