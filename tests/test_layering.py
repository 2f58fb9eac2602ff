"""The study is the top layer: `infomin` (the library), `infomin.pretrain` and
`infomin.detection` never import `infomin.study`.

Oracle: Python's own parser (every import statement, relative ones resolved against the module's
package) and, at run time, `sys.modules` after importing every module of those packages.
"""
import ast
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# source folder -> the package it installs as (setup.py's PACKAGE_DIRS)
LAYERS = {"infomin": "infomin", "pretrain": "infomin.pretrain", "detection": "infomin.detection",
          "configs": "infomin.configs"}


def _modules(folder: str, package: str):
    for path in sorted((ROOT / folder).rglob("*.py")):
        rel = path.relative_to(ROOT / folder).with_suffix("").parts
        if rel[-1] == "__init__":
            name, pkg = ".".join((package, *rel[:-1])), ".".join((package, *rel[:-1]))
        else:
            name, pkg = ".".join((package, *rel)), ".".join((package, *rel[:-1]))
        yield path, name, pkg


def imported_names(path: Path, pkg: str) -> set:
    """Absolute names of every module an `import` / `from ... import` in `path` names."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = pkg.split(".")
                anchor = ".".join(parts[:len(parts) - node.level + 1])
                base = f"{anchor}.{base}" if base else anchor
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return names


def _imports_study(names) -> list:
    return sorted(n for n in names if n == "infomin.study" or n.startswith("infomin.study."))


def test_lower_layers_never_import_the_study():
    offenders = {}
    for folder, package in LAYERS.items():
        for path, _, pkg in _modules(folder, package):
            bad = _imports_study(imported_names(path, pkg))
            if bad:
                offenders[str(path.relative_to(ROOT))] = bad
    assert not offenders, f"these modules import the study (the top layer): {offenders}"


def test_the_scan_sees_imports(tmp_path):
    # the study itself imports the lower layers, absolutely and relatively
    names = set()
    for path, _, pkg in _modules("study", "infomin.study"):
        names |= imported_names(path, pkg)
    assert {"infomin.detection.trainer", "infomin.pretrain.engine", "infomin.study.report",
            "infomin.study.run"} <= names
    # relative imports resolve against the package; imports inside functions count too
    probe = tmp_path / "probe.py"
    probe.write_text("from ..study import run\nfrom . import datasets\n"
                     "def later():\n    import infomin.study.cli\n")
    names = imported_names(probe, "infomin.detection")
    assert _imports_study(names) == ["infomin.study", "infomin.study.cli", "infomin.study.run"]
    assert "infomin.detection.datasets" in names


def test_importing_every_lower_module_loads_no_study():
    modules = [name for folder, package in LAYERS.items()
               for _, name, _ in _modules(folder, package) if not name.endswith("__main__")]
    code = ("import importlib, sys\n"
            f"for name in {modules!r}:\n"
            "    importlib.import_module(name)\n"
            "print(sorted(m for m in sys.modules if m.startswith('infomin.study')))\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                          env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip().splitlines()[-1] == "[]"
