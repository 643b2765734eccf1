"""Hand-written mutations that mutmut cannot make, each run against the tests that must catch it.

mutmut 3 leaves decorated functions alone (``@register_distill`` losses, ``@property``,
``@torch.no_grad``) and this project's options are also read outside its mutation sets
(``players.py``'s optimizer, ``data/__init__.py``'s normalisation). This script applies each
one-line mutation below to a copy of ``src/`` (never to ``src/`` itself), runs the listed tests
against it, and reports which mutations the tests catch. The list includes the mutations of
issue 12 (α and β swapped, DISTN's weight, CODIS's direction, NOISY's mask, ...).

    OMP_NUM_THREADS=1 python scripts/mutation_manual.py          # about a minute
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MATHS = ["tests/test_method_maths.py", "tests/test_losses.py"]
OPTIONS = ["tests/test_training_options.py"]

# (what it breaks, file under src/kdgan, the exact text, its replacement, the tests that must fail)
MUTATIONS = [
    ("KDGAN: alpha and beta swapped", "methods/kdgan.py", "(opts.alpha, opts.beta) if role",
     "(opts.beta, opts.alpha) if role", MATHS),
    ("DISTN: the weight on the other term", "methods/distn.py",
     "(1 - opts.weight) * self.cross_entropy(logits, batch) + opts.weight * soft",
     "opts.weight * self.cross_entropy(logits, batch) + (1 - opts.weight) * soft", MATHS),
    ("CODIS: beta and gamma to the other player", "methods/codis.py",
     'weight = opts.beta if role == "student" else opts.gamma',
     'weight = opts.gamma if role == "student" else opts.beta', MATHS),
    ("NOISY: mask removed", "methods/noisy.py", "target * (1 + mask * noise)", "target * (1 + noise)", MATHS),
    ("adversarial loss: generator_loss kind ignored", "methods/sampling.py",
     "generator_loss((relaxed * disc_logits).sum(-1), kind)", "generator_loss((relaxed * disc_logits).sum(-1))", MATHS),
    ("BCE: mean instead of sum over labels", "methods/losses.py", 'reduction="sum") / logits.shape[0]',
     'reduction="mean")', MATHS),
    ("l2_logits: sum instead of mean", "methods/losses.py", "return F.mse_loss(student_logits, teacher_logits)",
     'return F.mse_loss(student_logits, teacher_logits, reduction="sum") / len(student_logits)', MATHS),
    ("kl: T instead of T^2", "methods/losses.py", 'reduction="batchmean") * temperature**2',
     'reduction="batchmean") * temperature', MATHS),
    ("kl: direction reversed", "methods/losses.py", "F.kl_div(log_q, log_p, log_target=True",
     "F.kl_div(log_p, log_q, log_target=True", MATHS),
    ("kl_sigmoid: no T^2", "methods/losses.py", "kl.sum(-1).mean() * temperature**2", "kl.sum(-1).mean()", MATHS),
    ("temperature: annealing ignored", "methods/adversarial.py", "opts.tau_end, self.epochs)(self.epoch)",
     "opts.tau_end, self.epochs)(0)", MATHS),
    ("optimizer: lr_decay ignored", "training/players.py", "if cfg.lr_decay < 1 else None", "if False else None",
     OPTIONS),
    ("optimizer: momentum ignored", "training/players.py", "momentum=cfg.momentum,", "momentum=0.0,", OPTIONS),
    ("optimizer: weight_decay ignored (sgd)", "training/players.py",
     "momentum=cfg.momentum, weight_decay=cfg.weight_decay", "momentum=cfg.momentum, weight_decay=0.0", OPTIONS),
    ("optimizer: adamw built as adam", "training/players.py", 'torch.optim.AdamW if cfg.name == "adamw"',
     'torch.optim.Adam if cfg.name == "adamw"', OPTIONS),
    ("game_lr ignored", "training/players.py", "        if self.game_lr is None:\n            return",
     "        if True:\n            return", OPTIONS),
    ("grad_clip ignored", "training/engine.py", "if self.config.grad_clip is not None:", "if False:", OPTIONS),
    ("passes ignored", "training/engine.py", "for _ in range(player.passes):", "for _ in range(1):", OPTIONS),
    ("D report: sign of the fake score", "training/evaluator.py", "(fake_score < 0).float().mean()",
     "(fake_score > 0).float().mean()", OPTIONS),
    ("per_feature statistics from the validation split", "data/__init__.py", "spec_x = per_feature(splits.train.x)",
     "spec_x = per_feature(splits.val.x)", OPTIONS),
]


def pytest(tests: list[str], env: dict[str, str]) -> int:
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", *tests],
                          cwd=REPO, env=env, capture_output=True, text=True).returncode


def main() -> int:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    caught = 0
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "src"
        shutil.copytree(REPO / "src", src, ignore=shutil.ignore_patterns("__pycache__"))
        env["PYTHONPATH"] = str(src)  # ahead of the editable install's path to the real src/
        if pytest(MATHS + OPTIONS, env) != 0:
            print("the tests fail on the unmutated copy: fix them first")
            return 2
        for name, file, old, new, tests in MUTATIONS:
            path = src / "kdgan" / file
            original = path.read_text()
            if original.count(old) != 1:
                print(f"NOT APPLIED  {name}: the text is not in {file} exactly once (the source changed)")
                continue
            path.write_text(original.replace(old, new))
            try:
                code = pytest(tests, env)
            finally:
                path.write_text(original)
            killed = code == 1  # tests failed; 0 is survived, others are errors
            caught += killed
            status = "caught" if killed else ("SURVIVED" if code == 0 else f"error rc={code}")
            print(f"{status:12} {name}")
    print(f"{caught} of {len(MUTATIONS)} mutations caught")
    return 0 if caught == len(MUTATIONS) else 1


if __name__ == "__main__":
    sys.exit(main())
