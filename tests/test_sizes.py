"""Small files, short functions: no module in `toymi/` is over 300 lines and no function or method over 60 (README
and docs/architecture.md state both). Parsed, never imported."""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "toymi"
MAX_FILE_LINES, MAX_FUNCTION_LINES = 300, 60


def test_no_module_is_over_300_lines_and_no_function_over_60():
    long_files, long_functions = [], []
    for path in sorted(PACKAGE.rglob("*.py")):
        source = path.read_text()
        name = path.relative_to(PACKAGE.parent)
        if source.count("\n") > MAX_FILE_LINES:
            long_files.append(f"{name}: {source.count(chr(10))} lines")
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = node.end_lineno - node.lineno + 1
                if lines > MAX_FUNCTION_LINES:
                    long_functions.append(f"{name}:{node.lineno} {node.name}: {lines} lines")
    assert not long_files, f"modules over {MAX_FILE_LINES} lines: {long_files}"
    assert not long_functions, f"functions over {MAX_FUNCTION_LINES} lines: {long_functions}"
