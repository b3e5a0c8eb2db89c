"""The package's floors (docs/architecture.md): each unit imports only from floors below it and from itself.

Read from the source with ``ast``, so the check sees every import, lazy ones inside functions included.
"""
import ast
from pathlib import Path
from typing import Dict, Iterator, Tuple

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "spacy_elmo"
FLOORS: Dict[str, int] = {
    "about": 0, "files": 0, "devices": 0, "doc_data": 0, "sequences": 0,
    "bilm": 1,
    "io": 2,
    "layers": 3, "pretraining": 3, "loggers": 3,
    "pipeline": 4, "embedding": 4,
    "allennlp": 5, "": 5,  # "": the package's __init__
    "cli": 6, "__main__": 7,
}


UNITS = {p.stem for p in PACKAGE.iterdir() if p.suffix == ".py" or (p / "__init__.py").exists()} - {"__init__"}


def unit_of(module: str) -> str:
    """``spacy_elmo.bilm.lstm`` -> ``bilm``; ``spacy_elmo`` and a name of its ``__init__`` -> ``""``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in UNITS else ""


def module_of(path: Path) -> Tuple[str, str]:
    """(the module's dotted name, the package its relative imports start from)."""
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
        return ".".join(parts), ".".join(parts)
    return ".".join(parts), ".".join(parts[:-1])


def imports(path: Path) -> Iterator[Tuple[int, str]]:
    """(line, absolute module) of every import of the package in ``path``."""
    _, package = module_of(path)
    for node in ast.walk(ast.parse(path.read_text(encoding="utf8"))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
                names = [target] if node.module else [f"{target}.{a.name}" for a in node.names]
            else:
                names = [node.module or ""]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        else:
            continue
        for name in names:
            if name == "spacy_elmo" or name.startswith("spacy_elmo."):
                yield node.lineno, name


def test_every_unit_has_a_floor():
    units = {unit_of(module_of(p)[0]) for p in PACKAGE.rglob("*.py")}
    assert units <= set(FLOORS), f"give these a floor in FLOORS and docs/architecture.md: {units - set(FLOORS)}"


def test_no_import_climbs_to_a_higher_or_level_floor():
    climbs = []
    for path in sorted(PACKAGE.rglob("*.py")):
        here = unit_of(module_of(path)[0])
        for line, target in imports(path):
            there = unit_of(target)
            if there != here and FLOORS.get(there, 99) >= FLOORS[here]:
                climbs.append(f"{path.relative_to(PACKAGE.parent)}:{line} ({here}, floor {FLOORS[here]}) imports "
                              f"{target} (floor {FLOORS.get(there)})")
    assert not climbs, "\n".join(climbs)


@pytest.mark.parametrize("source, expected", [("from ..pretraining.trainer import x", "spacy_elmo.pretraining.trainer"),
                                              ("from .. import __version__", "spacy_elmo.__version__")])
def test_relative_imports_resolve(tmp_path, source, expected):
    path = PACKAGE / "io" / "probe_for_the_test.py"
    path.write_text(source)
    try:
        assert [t for _, t in imports(path)] == [expected]
    finally:
        path.unlink()
