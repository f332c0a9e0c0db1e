"""The package's layers: a module imports only from its own layer and the ones below it."""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "src" / "imdb_sentiment"
# Lowest first. Training and serving both stand on scoring; neither imports the other.
LAYERS = {"": 0, "data": 1, "network": 2, "scoring": 3, "training": 4, "serving": 4}
MODULES = sorted(PACKAGE.rglob("*.py"))


def layer_of(module: str) -> str:
    """ "imdb_sentiment.data.text" -> "data"; a top-level module is the shared basics ("")."""
    parts = module.split(".")
    return parts[1] if len(parts) > 2 and parts[1] in LAYERS else ""


def imported(path: Path) -> set[str]:
    """Every imdb_sentiment module ``path`` imports, at any depth of the file."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("imdb_sentiment"):
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("imdb_sentiment"))
    return found


def test_the_tree_has_the_layers_and_nothing_else_at_the_top():
    packages = {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").is_file()}
    assert packages == set(LAYERS) - {""}
    basics = {p.stem for p in PACKAGE.glob("*.py")}
    assert basics == {
        "__init__",
        "contracts",
        "fileio",
        "layout",
        "malloc",
        "numba_math",
        "params",
        "schema",
    }


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_import_runs_up_or_across_the_layers(path):
    module = ".".join(("imdb_sentiment", *path.relative_to(PACKAGE).with_suffix("").parts))
    own = layer_of(module)
    for name in imported(path):
        other = layer_of(name)
        if other == own:
            continue
        assert LAYERS[other] < LAYERS[own], f"{module} imports {name}, a layer not below it"
