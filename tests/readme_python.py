"""The README's Python blocks, for the tests that run them exactly as printed."""

import re
from pathlib import Path

README = Path(__file__).parents[1] / "README.md"


def python_block(containing: str = "") -> str:
    """The README's first ```python block whose text contains `containing` (the very first for "")."""
    blocks = [b for b in re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), re.S)
              if containing in b]
    assert blocks, f"no Python block of README.md contains {containing!r}"
    return blocks[0]


def run_python_block(containing: str = "") -> tuple[str, dict]:
    """That block executed as written: its text and the namespace it leaves."""
    block = python_block(containing)
    namespace: dict = {}
    exec(compile(block, str(README), "exec"), namespace)
    return block, namespace


def promised_output(block: str) -> str:
    """What a block says it prints: its last line, a comment, without the `# `."""
    return block.strip().splitlines()[-1].removeprefix("# ")
