"""Optional TensorBoard logging of the engine's per-epoch records.

``torch.utils.tensorboard`` (which needs the ``tensorboard`` package) is imported only when a
logger is created, so that training never depends on it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kdgan.optional import require

INSTALL = "pip install tensorboard"
SKIPPED_KEYS = ("stage", "epoch")  # the tag prefix and the step, not scalars of their own


class TensorBoardLogger:
    """Writes every numeric value of an epoch record as a scalar tagged ``STAGE/KEY``, e.g.
    ``train/loss_student`` or ``pretrain-teacher/val_accuracy``: one chart per key and stage."""

    def __init__(self, log_dir: str | Path, flush_secs: int = 30) -> None:
        tensorboard = require("torch.utils.tensorboard", INSTALL, "TensorBoard logging", package="tensorboard")
        self.log_dir = Path(log_dir)
        self.writer = tensorboard.SummaryWriter(log_dir=str(self.log_dir), flush_secs=flush_secs)

    def log(self, record: dict[str, Any], step: int | None = None) -> int:
        """Write the numeric values of ``record`` at ``step`` (default: its ``epoch``); return how
        many scalars were written. Non-finite losses are written too: they show where a run diverged."""
        if step is None:
            step = int(record.get("epoch", 0))
        stage = str(record.get("stage", "train"))
        written = 0
        for key, value in record.items():
            if key in SKIPPED_KEYS or isinstance(value, bool) or not isinstance(value, int | float):
                continue
            self.writer.add_scalar(f"{stage}/{key}", float(value), global_step=step)
            written += 1
        return written

    def flush(self) -> None:
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()

    def __enter__(self) -> TensorBoardLogger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def replay_run(run_dir: str | Path, log_dir: str | Path | None = None) -> Path:
    """Write a finished run's metrics.jsonl to TensorBoard (default ``RUN_DIR/tensorboard``) so
    that runs trained without the logger can be compared there; return the log folder."""
    from kdgan.evaluation.plot import read_metrics

    records = read_metrics(run_dir)
    target = Path(log_dir) if log_dir is not None else Path(run_dir) / "tensorboard"
    with TensorBoardLogger(target) as logger:
        for record in records:
            logger.log(record)
    return target

