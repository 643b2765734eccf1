"""The package's layering: what may import what."""

import subprocess
import sys

import pytest


def imported_kdgan_modules(statement: str) -> set[str]:
    """The kdgan modules a fresh interpreter has loaded after running ``statement``."""
    code = f"{statement}; import sys; print(' '.join(m for m in sys.modules if m.startswith('kdgan')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    return set(out.split())


def test_deployment_imports_nothing_from_training_or_experiments():
    loaded = imported_kdgan_modules("import kdgan.deploy.student_file, kdgan.deploy.export, kdgan.deploy.predict")
    assert {"kdgan.deploy.student_file", "kdgan.deploy.export", "kdgan.deploy.predict"} <= loaded
    assert not {m for m in loaded if m.startswith(("kdgan.training", "kdgan.experiments", "kdgan.methods"))}


def test_public_names_resolve_lazily_and_unknown_names_fail():
    import kdgan

    loaded = imported_kdgan_modules("import kdgan")
    assert loaded == {"kdgan"}  # importing the package loads none of its layers
    for name in kdgan.__all__:
        assert getattr(kdgan, name) is not None, name
    assert kdgan.Trainer.__module__ == "kdgan.training.engine"
    with pytest.raises(AttributeError, match="NoSuchThing"):
        kdgan.NoSuchThing  # noqa: B018
