"""The demo: every method on the embedded digits data with few labels (or any config's data),
several seeds, one table: a comparison (:mod:`kdgan.experiments.comparison`) of one setting."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from kdgan.experiments.comparison import Setting, Spec, run_comparison, run_options, write_json
from kdgan.experiments.tables import summary_table
from kdgan.storage import atomic_write_text

# The supervised student is the demo's baseline row: trained for every comparison, not as a method.
DEMO_EXCLUDES = ("supervised",)


def demo_spec(seeds: int = 3, methods: Sequence[str] | None = None, config: str = "digits_kdgan",
              overrides: Sequence[str] = ()) -> Spec:
    """The demo as a comparison: one setting (``config``), every registered method but those in
    :data:`DEMO_EXCLUDES` unless ``methods`` names some."""
    return Spec((Setting("demo", config),), seeds, tuple(methods) if methods else None, DEMO_EXCLUDES,
                tuple(overrides))


def run_demo(
    seeds: int = 3, methods: Sequence[str] | None = None, config: str = "digits_kdgan",
    overrides: Sequence[str] = (), out: Path | None = None, progress: bool = False, jobs: int = 1,
) -> dict[str, Any]:
    """Train the teacher, the supervised student and each method for ``seeds`` seeds (afresh: the
    demo does not resume), in ``jobs`` processes.

    ``config`` supplies networks, data and the KDGAN options; other methods use their defaults.
    Returns ``{"runs": {method: [per-seed results]}, "params": {...}, "settings": {...}}``.
    """
    done = run_comparison(demo_spec(seeds, methods, config, run_options(overrides, progress=progress)), jobs=jobs)
    base = done["configs"]["demo"]
    report = {
        "runs": done["results"]["demo"], "params": done["params"],
        "settings": {"seeds": seeds, "config": config, "overrides": list(overrides),
                     "dataset": base["data"]["name"], "n": base["data"]["n"], "epochs": base["train"]["epochs"],
                     "seconds": done["seconds_this_invocation"]},
    }
    if out is not None:
        write_json(out / "results.json", report)
        atomic_write_text(out / "table.md", markdown_table(report) + "\n")
    return report


def markdown_table(report: dict[str, Any]) -> str:
    """The demo's table: test scores (validation-selected) per method, with network sizes: accuracy
    on multi-class data, the ranking metrics on multi-label data."""
    settings = report["settings"]
    labelled = "all training examples" if settings["n"] is None else f"n={settings['n']}"
    return (f"{summary_table(report['runs'], report['params'])}\n\n{settings['dataset']}, {labelled} labelled, "
            f"{settings['seeds']} seeds, {settings['epochs']} epochs per method; total {settings['seconds']} s.")
