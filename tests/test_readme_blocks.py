"""Every fenced Python and bash block in README.md runs, so that none can rot.

Each block is preceded by an HTML comment (invisible on GitHub) saying how it is tested:

- `<!-- readme-test: chain=NAME -->`: run exactly as written. Blocks of one chain run in README order, in one fresh
  working directory (holding links to `tasks/` and `benchmarks/`), so a Python block can load the run a bash block
  trained. Python blocks are executed; bash blocks run under `bash -euo pipefail` with this Python's scripts first on
  PATH, except lines that are nothing but `toymi` commands joined by `&&`: those run in this process through
  `toymi.cli.main`, the console script's entry point (the same arguments, working directory and return code, without
  a new JAX start-up per command; `test_the_console_script_runs` checks the script itself).
- `<!-- readme-test: chain=NAME args=ARGS -->`: the same, with ARGS appended to every `toymi train` / `toymi sweep`
  command (fewer steps, and a smaller model where the chain's later blocks do not depend on its size: the commands'
  flags, files and order are what is tested, not a long training).
- `<!-- readme-test: chain=NAME lines=N,M why=REASON -->`: only those lines of a bash block; REASON says why the
  others cannot run here.
- `<!-- readme-test: tested-by=tests/FILE.py::TEST -->`: a test elsewhere runs the block as written and checks
  its output; that test must exist.
- `<!-- readme-test: skip=REASON -->`: cannot run here (a cluster, a fresh virtualenv); the reason is shown.

A block with no comment fails the test below, so a new block cannot go untested by accident.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
FENCE = re.compile(r"(?:<!-- readme-test: (?P<how>[^>]*?) -->\n)?```(?P<lang>python|bash)\n(?P<body>.*?)```", re.S)
OPTION = re.compile(r"(\w[\w-]*)=((?:[^ ]| (?!\w[\w-]*=))+)")  # key=value, a value may hold spaces


@dataclass(frozen=True)
class Block:
    line: int  # where the fence opens in README.md
    lang: str
    body: str
    how: dict[str, str]

    def __str__(self) -> str:
        return f"README.md:{self.line} ({self.lang})"


def blocks() -> list[Block]:
    text = README.read_text(encoding="utf-8")
    found = []
    for m in FENCE.finditer(text):
        how = dict(OPTION.findall(m["how"])) if m["how"] else {}
        found.append(Block(text.count("\n", 0, m.start("lang")) + 1, m["lang"], m["body"], how))
    return found


def chains() -> dict[str, list[Block]]:
    out: dict[str, list[Block]] = {}
    for b in blocks():
        if "chain" in b.how:
            out.setdefault(b.how["chain"], []).append(b)
    return out


def test_every_block_says_how_it_is_tested():
    allowed = {"chain", "args", "lines", "why", "tested-by", "skip"}
    for b in blocks():
        assert b.how, f"{b} has no <!-- readme-test: ... --> comment above it"
        assert set(b.how) <= allowed, f"{b}: unknown keys {set(b.how) - allowed}"
        assert ("chain" in b.how) + ("tested-by" in b.how) + ("skip" in b.how) == 1, \
            f"{b}: give exactly one of chain=, tested-by=, skip="
        assert ("lines" in b.how) == ("why" in b.how), f"{b}: lines= needs why= (why the other lines do not run)"
        if "tested-by" in b.how:
            path, _, name = b.how["tested-by"].partition("::")
            assert f"def {name}(" in (ROOT / path).read_text(), f"{b}: {b.how['tested-by']} does not exist"


def _bash_lines(block: Block) -> list[str]:
    """Logical lines (continuations joined), comments and blank lines dropped, `args=` appended to toymi runs."""
    lines = [" ".join(part.strip() for part in raw.split("\\\n")) for raw in re.split(r"(?<!\\)\n", block.body)]
    if "lines" in block.how:
        keep = {int(n) for n in block.how["lines"].split(",")}
        lines = [line for i, line in enumerate(lines, 1) if i in keep]
    out = []
    for line in lines:
        code = line.split(" #", 1)[0].strip() if not line.lstrip().startswith("#") else ""
        if not code:
            continue
        if "args" in block.how:
            code = " && ".join(f"{seg.strip()} {block.how['args']}" if re.match(r"\s*toymi (train|sweep)\b", seg)
                               else seg.strip() for seg in code.split("&&"))
        out.append(code)
    return out


SHELL_SYNTAX = set("|;<>$`()*?[]{}~\\'\"") | {"&"}  # anything bash would read differently from a list of words


def _toymi_commands(code: str) -> list[list[str]] | None:
    """The arguments of each `toymi` command of a line made only of `toymi` commands joined by `&&`; None for any
    other line (it runs under bash)."""
    segments = code.split("&&")
    if any(SHELL_SYNTAX & set(seg) for seg in segments):
        return None
    words = [seg.split() for seg in segments]
    return [w[1:] for w in words] if all(w and w[0] == "toymi" for w in words) else None


def _run_bash(block: Block, workdir: Path, monkeypatch) -> None:
    from toymi.cli import main

    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "PYTHONPATH": str(ROOT), "MPLBACKEND": "Agg"}
    for code in _bash_lines(block):
        commands = _toymi_commands(code)
        if commands is not None:
            monkeypatch.chdir(workdir)
            for argv in commands:
                assert main(argv) == 0, f"{block}: `toymi {' '.join(argv)}` failed"
            continue
        done = subprocess.run(["bash", "-euo", "pipefail", "-c", code], cwd=workdir, env=env, capture_output=True,
                              text=True, timeout=600)
        assert done.returncode == 0, f"{block}: `{code}` failed (rc {done.returncode}):\n{done.stderr[-3000:]}"


def _run_python(block: Block, workdir: Path, monkeypatch) -> None:
    monkeypatch.chdir(workdir)
    exec(compile(block.body, f"{block}", "exec"), {"__name__": "__readme__"})


@pytest.mark.slow
@pytest.mark.long(12)
@pytest.mark.parametrize("name", sorted(chains()))
def test_readme_chain_runs_as_written(name, tmp_path, monkeypatch):
    for link in ("tasks", "benchmarks"):
        (tmp_path / link).symlink_to(ROOT / link)
    for block in chains()[name]:
        if block.lang == "bash":
            _run_bash(block, tmp_path, monkeypatch)
        else:
            _run_python(block, tmp_path, monkeypatch)


def test_args_are_appended_to_toymi_runs_only():
    block = Block(1, "bash", "toymi train a.toml && toymi dissect runs/a   # why\n# a comment\n\ntoymi sweep b \\\n"
                  "    --grid x=1,2\npython x.py\n", {"chain": "c", "args": "--set train.steps=5"})
    assert _bash_lines(block) == ["toymi train a.toml --set train.steps=5 && toymi dissect runs/a",
                                  "toymi sweep b --grid x=1,2 --set train.steps=5", "python x.py"]
    assert _bash_lines(Block(1, "bash", "a\nb\nc\n", {"chain": "c", "lines": "1,3"})) == ["a", "c"]
    assert shlex.split(_bash_lines(block)[1])[-1] == "train.steps=5"


def test_lines_of_toymi_commands_run_in_process_and_others_under_bash():
    assert _toymi_commands("toymi train a.toml --set x=1 && toymi dissect runs/a") == [
        ["train", "a.toml", "--set", "x=1"], ["dissect", "runs/a"]]
    for line in ("toymi train a.toml | tee log", "toymi train a.toml && python x.py", "toymi view runs/* --port 1",
                 "toymi train a.toml > out", "toymi train \"a b.toml\"", "toymi train a.toml & toymi view r",
                 "ls runs", "toymi train $SPEC"):
        assert _toymi_commands(line) is None, line


@pytest.mark.slow
def test_the_console_script_runs():
    """The `toymi` executable that pip installs beside this Python starts and reaches the CLI (the chains above call
    its entry point in-process)."""
    done = subprocess.run([str(Path(sys.executable).parent / "toymi"), "--help"], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0 and "train" in done.stdout, done.stderr[-2000:]
