"""Every `from toymi... import name` in the repository names something that exists, the imports inside functions
included: most of toymi's imports are local (start-up time), so a rename leaves them broken until that function runs,
and a script that no test runs end to end (docs/view_screenshots.py once imported `spd_page` after its rename to
`keep_spd`) breaks silently. Read from the source (no script is run), then checked against the imported modules."""

import ast
import importlib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FOLDERS = ("toymi", "benchmarks", "docs", "tests", "tasks", "notebooks")


def toymi_imports(root: Path = ROOT) -> list[tuple[str, int, str, str]]:
    """(file, line, module, name) of every absolute `from toymi[.x] import name` in the Python files under `root`'s
    `FOLDERS`."""
    found = []
    for folder in FOLDERS:
        for path in sorted((root / folder).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
                if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module and (
                        node.module == "toymi" or node.module.startswith("toymi.")):
                    found += [(path.relative_to(root).as_posix(), node.lineno, node.module, a.name)
                              for a in node.names]
    return found


def unresolved(imports: list[tuple[str, int, str, str]]) -> list[str]:
    """One line per import whose module or name does not exist."""
    out = []
    for path, line, module, name in imports:
        try:
            target = importlib.import_module(module)
        except ImportError as e:
            out.append(f"{path}:{line}: from {module} import {name}: {e}")
            continue
        if name == "*" or hasattr(target, name):
            continue
        try:
            importlib.import_module(f"{module}.{name}")  # a submodule its package has not imported
        except ModuleNotFoundError:
            out.append(f"{path}:{line}: from {module} import {name}: {module} has no {name!r}")
    return out


def test_every_toymi_import_names_something_that_exists():
    imports = toymi_imports()
    assert len(imports) > 500  # the walk found the repository's imports
    missing = unresolved(imports)
    assert not missing, "\n".join(missing)


def test_a_name_that_no_longer_exists_is_reported_with_its_place(tmp_path):
    script = tmp_path / "docs" / "script.py"
    script.parent.mkdir()
    script.write_text("def main():\n    from toymi.views.spd_page import spd_page, keep_spd\n"
                      "    from toymi.nowhere import x\n    from toymi.views import spd_page\n")
    imports = toymi_imports(tmp_path)
    assert [i[1:] for i in imports] == [(2, "toymi.views.spd_page", "spd_page"), (2, "toymi.views.spd_page", "keep_spd"),
                                        (3, "toymi.nowhere", "x"), (4, "toymi.views", "spd_page")]
    found = unresolved(imports)
    assert len(found) == 2 and found[0] == ("docs/script.py:2: from toymi.views.spd_page import spd_page: "
                                            "toymi.views.spd_page has no 'spd_page'")
    assert found[1].startswith("docs/script.py:3: from toymi.nowhere import x: No module named 'toymi.nowhere'")
