"""Predicting with a run's student from IDX files, images and .npy arrays."""

from __future__ import annotations

import gzip
import json

import numpy as np
import pytest
import torch
from PIL import Image

from kdgan.build import load_student
from kdgan.errors import ConfigError, DataError
from kdgan.predict import CLASS_NAMES, fit_shape, format_json, format_table, predict, scores_from_logits


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
    assert json.loads(format_json(rows)) == rows
    assert format_table(predict(run_dir, tmp_path / "d.npy")).splitlines()[0].split() == ["input", "prediction"]


def fake_run(path, dataset: str, in_shape=(1, 28, 28), standardize: bool = False):
    """A student.pt as the engine writes it, with random weights (no training needed)."""
    from kdgan.models import build_model

    spec = {"name": "mlp", "hidden": [16]}
    module = build_model(spec, in_shape, 10)
    path.mkdir()
    torch.save({"role": "student", "state_dict": module.state_dict(), "run_info": {
        "model": {"spec": spec, "in_shape": list(in_shape), "num_classes": 10, "role": "student"},
        "config": {"method": "supervised", "data": {"name": dataset, "standardize": standardize}},
    }}, path / "student.pt")
    return path


def test_class_names_and_28x28_idx_of_a_fashion_mnist_run(tmp_path):
    run = fake_run(tmp_path / "fashion", "fashion-mnist")
    write_idx(tmp_path / "t10k-images-idx3-ubyte", np.random.default_rng(0).integers(0, 256, (3, 28, 28)))
    rows = predict(run, tmp_path / "t10k-images-idx3-ubyte", top_k=2)
    names = CLASS_NAMES["fashion-mnist"]
    assert len(rows) == 3 and all(e["name"] == names[e["class"]] for row in rows for e in row["top_k"])
    assert rows[0]["top_k"][0]["name"] in format_table(rows)


def test_standardized_runs_get_standardized_inputs(tmp_path):
    from kdgan.predict import preprocess
    from kdgan.student import open_student

    run = fake_run(tmp_path / "std", "mnist", standardize=True)
    student = open_student(run)
    x = torch.rand(4, 1, 28, 28)
    out = preprocess(x, student)
    assert torch.allclose(out.mean(dim=(1, 2, 3)), torch.zeros(4), atol=1e-5)
    assert torch.allclose(out.std(dim=(1, 2, 3), correction=0), torch.ones(4), atol=1e-4)
    np.save(tmp_path / "x.npy", x.numpy())
    rows = predict(run, tmp_path / "x.npy", top_k=10)
    with torch.no_grad():
        expected = scores_from_logits(student.module(out))
    for row, reference in zip(rows, expected, strict=True):
        assert row["prediction"] == int(reference.argmax())
        assert row["score"] == pytest.approx(float(reference.max()), abs=1e-6)
