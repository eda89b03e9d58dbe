"""Imports run one way: each toymi module may import only from its own layer or the layers below it.

    errors/validate → model → tasks → train → experiment → run → dissect / decompose / analysis / circuits
    → plot / views → reports → cli

Every `import` and `from ... import` in every module counts, at top level or inside a function (a deferred import is
still a dependency). A module that matches no entry of `LAYERS` fails the test too, so a new package gets a layer
when it is added.
"""

import ast
import functools
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "toymi"  # parsed, never imported: the test takes a second

# Lowest first. A module's layer is that of the longest dotted prefix listed here.
LAYERS: list[tuple[str, ...]] = [
    # no toymi dependencies but these
    ("toymi.errors", "toymi.validate", "toymi.trees", "toymi.jit", "toymi.sealed", "toymi.host"),
    ("toymi.model",),
    ("toymi.tasks", "toymi.predict", "toymi.interop"),  # read models; know nothing of training
    ("toymi.train",),  # the engine: plain values, nothing of TOML or sweeps
    ("toymi.interop.parity",),  # parity checks against TransformerLens: trains briefly with the engine's step
    ("toymi.experiment",),  # specs, sweeps, train(spec), train_sweep
    ("toymi.run", "toymi.reuse"),  # loading run directories (reuse: train_or_load = train if needed, then load)
    ("toymi.dissect", "toymi.decompose", "toymi.analysis", "toymi.circuits"),  # pure analysis of models and runs
    ("toymi.plot", "toymi.views"),  # figures and pages
    ("toymi.reports",),  # recipes, Report, dissect_run, phase diagrams
    ("toymi.cli", "toymi"),  # commands, one module per subcommand; `toymi` is the package root
]

# Wrong-way imports being removed, as (importer, imported module). Each must still exist (the test fails when one is
# gone, so it is deleted from here): this list only shrinks. Empty since the restructure of issue 15 landed.
KNOWN_VIOLATIONS: set[tuple[str, str]] = set()


def layer_of(module: str) -> int | None:
    """The rank in `LAYERS` of `module`'s longest listed prefix (the package root `toymi` only as itself)."""
    best, best_len = None, -1
    for rank, prefixes in enumerate(LAYERS):
        for prefix in prefixes:
            covers = module == prefix or (prefix != "toymi" and module.startswith(prefix + "."))
            if covers and len(prefix) > best_len:
                best, best_len = rank, len(prefix)
    return best


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path) -> set[str]:
    """Every toymi module `path` imports, relative imports resolved."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package.split(".")[: len(package.split(".")) - node.level + 1] if node.level else []
            found.add(".".join([*base, *([node.module] if node.module else [])]))
    return {m for m in found if m == "toymi" or m.startswith("toymi.")}


@functools.cache
def all_imports() -> dict[tuple[str, str], None]:
    """`(importer, imported)` for every toymi-to-toymi import, in a stable order."""
    return {(module_name(path), target): None for path in sorted(PACKAGE.rglob("*.py"))
            for target in sorted(imported_modules(path))}


def test_every_module_has_a_layer():
    missing = sorted({m for pair in all_imports() for m in pair if layer_of(m) is None}
                     | {module_name(p) for p in PACKAGE.rglob("*.py") if layer_of(module_name(p)) is None})
    assert not missing, f"modules with no layer (add them to LAYERS in {__file__}): {missing}"


def test_no_import_points_to_a_higher_layer():
    wrong = sorted(pair for pair in all_imports()
                   if layer_of(pair[1]) is not None and layer_of(pair[0]) is not None
                   and layer_of(pair[1]) > layer_of(pair[0]) and pair not in KNOWN_VIOLATIONS)
    assert not wrong, "imports that point to a higher layer (importer -> imported, layers " + \
        " < ".join("/".join(p.removeprefix("toymi.") for p in layer) for layer in LAYERS) + "):\n" + \
        "\n".join(f"  {a} (layer {layer_of(a)}) -> {b} (layer {layer_of(b)})" for a, b in wrong)


def test_known_violations_still_exist_so_the_list_only_shrinks():
    gone = sorted(KNOWN_VIOLATIONS - set(all_imports()))
    assert not gone, f"these known violations are fixed: delete them from KNOWN_VIOLATIONS in {__file__}: {gone}"


def test_layer_of_reads_the_longest_prefix():
    assert layer_of("toymi.decompose.fit") == layer_of("toymi.dissect")
    assert layer_of("toymi.cli.decompose") == layer_of("toymi.cli") == len(LAYERS) - 1
    assert layer_of("toymi.plot.tms") < layer_of("toymi.reports.recipes.tms")
    assert layer_of("toymi.train.update") < layer_of("toymi.experiment.training") < layer_of("toymi.run")
    assert layer_of("toymi") == len(LAYERS) - 1
    assert layer_of("toymix") is None and layer_of("numpy") is None and layer_of("toymi.unlisted") is None
