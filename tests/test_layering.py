"""The layer rules of docs/architecture.md, checked on the source (every import, lazy ones included).

    base      fastem.errors, fastem.backend, fastem.interop     import only each other
    kernels   fastem.kernels.*                                  import only base and kernels
    library   everything else in fastem                         never imports fastem.cli or fastem.bench
    CLI       fastem.cli.*                                      top

Plus: production code does not import the float64 test oracles (``_reference`` modules) except
the kernels' own ``engine="numpy"`` paths, which *are* the oracle by design (PyLops' pattern).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BASE = {"fastem.errors", "fastem.backend", "fastem.interop", "fastem._version"}


def _module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = list(rel.parts)
    if parts[0] == "kernels":
        parts = ["fastem", "kernels", *parts[1:]]
    elif parts[0] == "cli":
        parts = ["fastem", "cli", *parts[1:]]
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _imports(path: Path) -> list[tuple[int, str]]:
    """(line, absolute module) of every ``fastem`` import in a file, wherever it sits."""
    me = _module_name(path)
    package = me if path.name == "__init__.py" else me.rsplit(".", 1)[0]
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            # from M import x: x is a submodule of M or a name defined in M (resolved by _target)
            out += [(node.lineno, f"{mod}.{a.name}") for a in node.names]
    return [(ln, m) for ln, m in out if m == "fastem" or m.startswith("fastem.")]


def _files(*dirs):
    return sorted(p for d in dirs for p in (ROOT / d).rglob("*.py") if "__pycache__" not in p.parts)


def _is_module(name: str) -> bool:
    parts = name.split(".")
    if parts[:2] == ["fastem", "kernels"]:
        p = ROOT / "kernels" / Path(*parts[2:]) if len(parts) > 2 else ROOT / "kernels"
    elif parts[:2] == ["fastem", "cli"]:
        p = ROOT / "cli" / Path(*parts[2:]) if len(parts) > 2 else ROOT / "cli"
    else:
        p = ROOT / Path(*parts)
    return p.with_suffix(".py").exists() or (p / "__init__.py").exists()


def _target(name: str) -> str:
    """The module an imported name lives in (``fastem.backend.Device`` -> ``fastem.backend``)."""
    while name.count(".") and not _is_module(name):
        name = name.rsplit(".", 1)[0]
    return name


def _violations(files, allowed) -> list[str]:
    bad = []
    for f in files:
        for line, name in _imports(f):
            mod = _target(name)
            if mod == "fastem" and name == "fastem.__version__":
                mod = "fastem._version"
            if not allowed(mod):
                bad.append(f"{f.relative_to(ROOT)}:{line} imports {mod}")
    return bad


def test_base_imports_only_base():
    files = [ROOT / "fastem" / f"{m.split('.')[1]}.py" for m in BASE]
    assert not _violations(files, lambda m: m in BASE)


def test_kernels_are_leaves():
    assert not _violations(_files("kernels"), lambda m: m in BASE or m.startswith("fastem.kernels"))


def test_library_never_imports_the_cli_or_the_benchmarks():
    assert not _violations(_files("fastem"), lambda m: not m.startswith(("fastem.cli", "fastem.bench")))


def test_production_code_does_not_import_test_oracles():
    def ok(m):
        return not m.rsplit(".", 1)[-1] in ("_reference", "_scan_reference")
    lib = [f for f in _files("fastem", "cli") if f.name != "_reference.py"]
    assert not _violations(lib, ok)


@pytest.mark.parametrize("code,expect", [
    ("from fastem import config\n", "fastem.config"),
    ("from fastem.config import settings\n", "fastem.config"),
    ("def f():\n    from fastem.tomo import resire\n", "fastem.tomo"),
    ("from .. import config\n", "fastem.config"),
])
def test_the_checker_sees_upward_imports(tmp_path, monkeypatch, code, expect):
    fake = ROOT / "kernels" / "_layering_probe_tmp.py"
    fake.write_text(code)
    try:
        bad = _violations([fake], lambda m: m in BASE or m.startswith("fastem.kernels"))
    finally:
        fake.unlink()
    assert any(expect in b for b in bad), bad
