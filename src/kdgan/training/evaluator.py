"""Scoring a method's players on a run's splits: logits in eval mode and in batches (each rank a
shard under torchrun, gathered back), the metrics of a split, the per-epoch validation record and
the discriminator's accuracy on true and generated pairs."""

from __future__ import annotations

import contextlib
from collections.abc import Callable

import torch
from torch import Tensor

from kdgan.config import TrainConfig
from kdgan.data.core import Batch, Splits, multi_hot
from kdgan.evaluation.metrics import evaluate_logits, predict_logits
from kdgan.methods.base import Method
from kdgan.training.distributed import DistInfo, gather_rows

CLASSIFIERS = ("student", "teacher")


class Evaluator:
    """Evaluates ``method``'s players on ``splits`` in batches of ``batch_size`` under ``autocast``."""

    def __init__(
        self, method: Method, splits: Splits, batch_size: int, dist: DistInfo,
        autocast: Callable[[], contextlib.AbstractContextManager],
    ) -> None:
        self.method, self.splits, self.batch_size, self.dist, self.autocast = method, splits, batch_size, dist, autocast

    def logits(self, role: str, split: str) -> Tensor:
        """Logits of ``role`` on every example of a split ('train', 'val' or 'test'), every player
        in eval mode; under torchrun each rank scores a shard and the rows are gathered back."""
        data = getattr(self.splits, split)
        for player in self.method.players.values():
            player.module.eval()

        def forward(batch: Batch) -> Tensor:
            with self.autocast():
                return self.method.logits(role, batch).float()

        if self.dist.enabled:
            device = data.x.device
            mine = data.subset(torch.arange(self.dist.rank, len(data), self.dist.world, device=device))
            return gather_rows(predict_logits(forward, mine, self.batch_size), len(data), self.dist)
        return predict_logits(forward, data, self.batch_size)

    def metrics(self, role: str, split: str, logits: Tensor | None = None) -> dict[str, float]:
        """Metrics of ``role`` on a split (from ``logits`` if they were already computed)."""
        metrics = evaluate_logits(self.logits(role, split) if logits is None else logits, getattr(self.splits, split))
        values = torch.stack(list(metrics.values())).tolist()  # one read for every metric
        return dict(zip(metrics, values, strict=True))

    def epoch_record(
        self, selects: str | None, roles: tuple[str, ...], pretrain: bool, config: TrainConfig
    ) -> dict[str, float]:
        """The validation metrics of the player a stage ``selects`` (nothing when it selects none);
        in a game stage also its test metrics (``eval_test_each_epoch``) and the other updated
        classifiers' and D's validation scores (``report_players``)."""
        if selects is None:
            return {}
        val_logits = self.logits(selects, "val")
        record = {f"val_{k}": v for k, v in self.metrics(selects, "val", val_logits).items()}
        if config.eval_test_each_epoch and not pretrain:
            record.update({f"test_{k}": v for k, v in self.metrics(selects, "test").items()})
        if not pretrain and config.report_players:
            for role in roles:
                if role in CLASSIFIERS and role != selects:
                    record.update({f"{role}_val_{k}": v for k, v in self.metrics(role, "val").items()})
            if "discriminator" in self.method.players and selects == "student":
                record.update(self.discriminator_report(val_logits))
        return record

    @torch.no_grad()
    def discriminator_report(self, student: Tensor) -> dict[str, float]:
        """D on validation: its accuracy on true pairs (x, y) scored above 1/2 (``d_true_acc``) and
        on pairs with the student's top label (from its validation logits ``student``) scored
        below 1/2 (``d_fake_acc``); its accuracy as a classifier, the argmax of g(x)
        (``d_class_acc``, multi-class data only); and the mean reward D gives to the true labels
        (``d_reward_true``, mean sigmoid(g_y)) and to each generator's labels (``d_reward_<role>``,
        ``sum_y p(y|x) sigmoid(g_y)`` averaged over examples)."""
        val = self.splits.val
        scores = predict_logits(lambda b: self.method.logits("discriminator", b), val, self.batch_size)
        true = multi_hot(val.y, scores.shape[-1])
        true_score = (scores * true).sum(-1) / true.sum(-1).clamp_min(1)
        fake_score = scores.gather(-1, student.argmax(-1, keepdim=True)).squeeze(-1)
        reward = torch.sigmoid(scores)
        report = {
            "d_true_acc": (true_score > 0).float().mean(), "d_fake_acc": (fake_score < 0).float().mean(),
            "d_reward_true": ((reward * true).sum(-1) / true.sum(-1).clamp_min(1)).mean(),
            "d_reward_student": (student.softmax(-1) * reward).sum(-1).mean(),
        }
        if not val.multilabel:
            report["d_class_acc"] = (scores.argmax(-1) == val.y).float().mean()
        if "teacher" in self.method.players:
            teacher = self.logits("teacher", "val")
            report["d_reward_teacher"] = (teacher.softmax(-1) * reward).sum(-1).mean()
        values = torch.stack(list(report.values())).tolist()  # one read for every value
        return dict(zip(report, values, strict=True))
