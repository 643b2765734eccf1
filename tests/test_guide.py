"""Every Python block of docs/GUIDE.md runs as written."""

import re
from pathlib import Path

import pytest

GUIDE = Path(__file__).resolve().parents[1] / "docs" / "GUIDE.md"
BLOCKS = re.findall(r"```python\n(.*?)```", GUIDE.read_text(), flags=re.S)


def test_guide_has_the_promised_examples():
    assert len(BLOCKS) >= 3
    assert all(len(block.strip().splitlines()) <= 30 for block in BLOCKS)


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_guide_block_runs(index, capsys):
    exec(compile(BLOCKS[index], f"{GUIDE.name}[{index}]", "exec"), {"__name__": "guide"})
    assert capsys.readouterr().out.strip()  # every example prints its result
