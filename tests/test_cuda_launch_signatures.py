"""Every CuPy ``RawModule`` launch matches the ``extern "C"`` signature it calls, checked without a GPU.

CuPy passes a launch's argument tuple to the kernel as raw bytes: a Python ``int`` becomes a
64-bit integer, a ``numpy.float64`` a double, an array a pointer. Nothing checks the tuple
against the C signature, so a wrong count or a ``float`` where the kernel reads ``int`` shows
up only as garbage on a GPU. This module parses every ``kernels/cuda/*.cu`` signature and every
``_cuda.get_function(...)`` launch site in ``kernels/*.py`` (with :mod:`ast`, following the
kernel-name variable, f-string suffixes, a local argument tuple and ``*`` expansions of local
helpers) and checks, for every kernel a site can call:

- the argument count equals the parameter count;
- a NumPy scalar constructor (``np.int32(...)``, ``np.float64(...)``, ``R.seed_u64(...)``) sits
  where the C parameter is that scalar type, and never where it is a pointer;
- a dtype-dependent scalar (``x.dtype.type(a)``, ``rdt(b)`` with ``rdt = x.dtype.type``) sits at
  a floating-point parameter (real or ``float2``/``double2`` complex) whose precision matches the
  kernel's suffix (``_f32``/``_c64``: single; ``_f64``/``_c128``: double);
- anything else (an array) sits where the parameter is a pointer.

It also checks that every launch site was understood (none skipped silently) and that every
``extern "C"`` kernel is launched by at least one site (no dead or misspelt entry points).
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

from fastem.kernels import _cuda

KERNELS = Path(_cuda.__file__).resolve().parent
ENTRY = re.compile(r'extern\s+"C"\s+__global__\s+void\s+(?:__launch_bounds__\([^)]*\)\s+)?(\w+)\s*\(([^)]*)\)',
                   re.S)

# C parameter type (qualifiers stripped) -> scalar kind
C_SCALARS = {
    "int": "i32", "int32_t": "i32", "unsigned int": "u32", "uint32_t": "u32", "unsigned": "u32",
    "long long": "i64", "long long int": "i64", "int64_t": "i64", "ptrdiff_t": "i64",
    "unsigned long long": "u64", "unsigned long long int": "u64", "uint64_t": "u64", "size_t": "u64",
    "float": "f32", "double": "f64", "float2": "c64", "double2": "c128",
    "cuFloatComplex": "c64", "cuDoubleComplex": "c128",
}
# Python-side scalar constructors -> scalar kind
PY_SCALARS = {"int32": "i32", "int64": "i64", "uint32": "u32", "uint64": "u64", "float32": "f32",
              "float64": "f64", "intp": "i64", "seed_u64": "u64"}


@dataclass(frozen=True)
class Param:
    text: str
    pointer: bool
    kind: str | None          # scalar kind for non-pointers


def _parse_param(text: str) -> Param:
    t = " ".join(re.sub(r"\b(__restrict__|const|volatile)\b", " ", text).split())
    pointer = "*" in t
    base = t.replace("*", " ").split()
    base = " ".join(base[:-1]) if len(base) > 1 else base[0]   # drop the parameter name
    return Param(text.strip(), pointer, None if pointer else C_SCALARS.get(base, f"?{base}"))


def cuda_signatures() -> dict[str, dict[str, list[Param]]]:
    """{source name: {kernel name: [Param, ...]}} for every ``kernels/cuda/*.cu``."""
    out = {}
    for src in _cuda.list_sources():
        text = re.sub(r"//[^\n]*", "", src.read_text())
        out[src.stem] = {name: [_parse_param(p) for p in params.split(",") if p.strip()]
                         for name, params in ENTRY.findall(text)}
    return out


@dataclass
class Site:
    file: str
    line: int
    source: str | None                # .cu stem
    names: list[str] | None          # regex patterns for the kernel name
    args: list[tuple[str, str]] | None   # (kind, code): kind "scalar:<k>", "dtype", "array"
    problem: str = ""


def _attr_name(node) -> str | None:
    if isinstance(node, ast.Attribute):
        return node.attr
    if isinstance(node, ast.Name):
        return node.id
    return None


def _is_get_function(node) -> bool:
    return isinstance(node, ast.Call) and _attr_name(node.func) == "get_function"


class _Scope:
    """Assignments visible in one function (and the functions enclosing it)."""

    def __init__(self, chain: list[ast.AST]):
        self.assign: dict[str, list[ast.AST]] = {}
        self.defs: dict[str, ast.FunctionDef] = {}
        for fn in chain:
            for node in ast.walk(fn):
                if isinstance(node, ast.Assign):
                    for tgt in node.targets:
                        self._bind(tgt, node.value)
                elif isinstance(node, ast.FunctionDef) and node is not fn:
                    self.defs[node.name] = node

    def _bind(self, tgt, value):
        if isinstance(tgt, ast.Name):
            self.assign.setdefault(tgt.id, []).append(value)
        elif isinstance(tgt, ast.Tuple) and isinstance(value, ast.Tuple) and len(tgt.elts) == len(value.elts):
            for t, v in zip(tgt.elts, value.elts):
                self._bind(t, v)


def _name_patterns(node, scope: _Scope, depth=0) -> list[str] | None:
    if depth > 4:
        return None
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [re.escape(node.value)]
    if isinstance(node, ast.JoinedStr):
        return ["".join(re.escape(v.value) if isinstance(v, ast.Constant) else r"\w+" for v in node.values)]
    if isinstance(node, ast.IfExp):
        a, b = _name_patterns(node.body, scope, depth + 1), _name_patterns(node.orelse, scope, depth + 1)
        return None if a is None or b is None else a + b
    if isinstance(node, ast.Name) and node.id in scope.assign:
        out = []
        for v in scope.assign[node.id]:
            p = _name_patterns(v, scope, depth + 1)
            if p is None:
                return None
            out += p
        return out
    return None


def _dtype_callable(node, scope: _Scope, depth=0) -> bool:
    """``x.dtype.type`` (any ``<dtype>.type``) or a local name bound to it (or to ``check_batch(...)``, which returns it)."""
    if isinstance(node, ast.Attribute) and node.attr == "type":   # x.dtype.type, _REAL_OF[x.dtype].type
        return True
    if isinstance(node, ast.Name) and node.id in scope.assign and depth < 4:
        return all(_dtype_callable(v, scope, depth + 1)
                   or (isinstance(v, ast.Call) and _attr_name(v.func) == "check_batch")
                   for v in scope.assign[node.id])
    return False


def _classify(node, scope: _Scope) -> tuple[str, str]:
    code = ast.unparse(node)
    if isinstance(node, ast.Call):
        fname = _attr_name(node.func)
        if fname in PY_SCALARS:
            return f"scalar:{PY_SCALARS[fname]}", code
        if _dtype_callable(node.func, scope):
            return "dtype", code
        if fname in {"int", "float", "bool"}:
            return "python-scalar", code
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float, bool)):
        return "python-scalar", code
    return "array", code


def _expand_args(node, scope: _Scope, depth=0) -> list[tuple[str, str]] | None:
    if depth > 4:
        return None
    if isinstance(node, ast.Tuple):
        out = []
        for elt in node.elts:
            if isinstance(elt, ast.Starred):
                inner = elt.value
                if isinstance(inner, ast.Call) and isinstance(inner.func, ast.Name) and inner.func.id in scope.defs:
                    rets = [n.value for n in ast.walk(scope.defs[inner.func.id]) if isinstance(n, ast.Return)]
                    if len(rets) != 1:
                        return None
                    sub = _expand_args(rets[0], scope, depth + 1)   # the helper's names live in the same chain
                else:
                    sub = _expand_args(inner, scope, depth + 1)
                if sub is None:
                    return None
                out += sub
            else:
                out.append(_classify(elt, scope))
        return out
    if isinstance(node, ast.Name) and node.id in scope.assign and len(scope.assign[node.id]) == 1:
        return _expand_args(scope.assign[node.id][0], scope, depth + 1)
    return None


def _functions_with_chain(tree):
    """(function node, [enclosing functions..., itself]) for every function in a module."""
    def visit(node, chain):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                yield child, chain + [child]
                yield from visit(child, chain + [child])
            else:
                yield from visit(child, chain)
    yield from visit(tree, [])


ORIGINS: set[tuple[str, int]] = set()   # get_function calls that produced at least one checked site


def launch_sites() -> list[Site]:
    sites = []
    for py in sorted(KERNELS.glob("*.py")):
        tree = ast.parse(py.read_text())
        wrappers: dict[str, ast.FunctionDef] = {}
        for fn, chain in _functions_with_chain(tree):
            own = [n for n in ast.walk(fn) if _is_get_function(n)
                   and not any(n in ast.walk(inner) for inner in ast.walk(fn)
                               if isinstance(inner, ast.FunctionDef) and inner is not fn)]
            if not own:
                continue
            scope = _Scope(chain)
            params = [a.arg for a in fn.args.args]
            for call in own:
                if fn.name == "get_function" and py.name == "_cuda.py":
                    continue
                src_node, name_node = call.args[0], call.args[1]
                if isinstance(src_node, ast.Name) and src_node.id in params:
                    wrappers[fn.name] = fn          # a launch helper: resolved at its callers
                    continue
                found = _resolve_launch(py.name, fn, scope, call, getattr(src_node, "value", None), name_node)
                sites.extend(found)
                if found:
                    ORIGINS.add((py.name, call.lineno))
        for fn, chain in _functions_with_chain(tree):
            scope = _Scope(chain)
            for call in ast.walk(fn):
                if isinstance(call, ast.Call) and isinstance(call.func, ast.Name) and call.func.id in wrappers:
                    w = wrappers[call.func.id]
                    names = [a.arg for a in w.args.args]
                    bound = dict(zip(names, call.args))
                    inner = next(n for n in ast.walk(w) if _is_get_function(n))
                    src, kname = bound.get(inner.args[0].id), bound.get(getattr(inner.args[1], "id", ""))
                    launch = next(n for n in ast.walk(w) if isinstance(n, ast.Call) and n.func is inner)
                    args_node = bound.get(getattr(launch.args[2], "id", ""))
                    site = Site(py.name, call.lineno, getattr(src, "value", None),
                                _name_patterns(kname, scope) if kname is not None else None,
                                _expand_args(args_node, scope) if args_node is not None else None)
                    sites.append(site)
                    ORIGINS.add((py.name, inner.lineno))
    return sites


def _resolve_launch(file, fn, scope, call, source, name_node) -> list[Site]:
    names = _name_patterns(name_node, scope)
    # the launch: get_function(...)(grid, block, args) or k = get_function(...); k(grid, block, args)
    launches = []
    for node in ast.walk(fn):
        if isinstance(node, ast.Call) and node.func is call:
            launches.append(node)
    holder = None
    for node in ast.walk(fn):
        if isinstance(node, ast.Assign) and node.value is call and isinstance(node.targets[0], ast.Name):
            holder = node.targets[0].id
    if holder:
        for node in ast.walk(fn):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == holder:
                launches.append(node)
    if not launches:
        return [Site(file, call.lineno, source, names, None, "no launch of the fetched kernel found")]
    out = []
    for launch in launches:
        if len(launch.args) != 3:
            out.append(Site(file, launch.lineno, source, names, None, "launch is not kernel(grid, block, args)"))
            continue
        out.append(Site(file, launch.lineno, source, names, _expand_args(launch.args[2], scope)))
    return out


SIGS = cuda_signatures()
SITES = launch_sites()


def _precision(kernel: str) -> str | None:
    if re.search(r"(_f32|_c64)$", kernel):
        return "f32"
    if re.search(r"(_f64|_c128)$", kernel):
        return "f64"
    return None


def check_site(site: Site, sigs=SIGS) -> list[str]:
    """Problems with one launch site, as readable lines (empty: it matches every kernel it can call)."""
    where = f"{site.file}:{site.line}"
    if site.problem:
        return [f"{where}: {site.problem}"]
    if site.source not in sigs:
        return [f"{where}: unknown CUDA source {site.source!r}"]
    if site.names is None or site.args is None:
        return [f"{where}: could not resolve the kernel name or the argument tuple statically"]
    kernels = [k for k in sigs[site.source] if any(re.fullmatch(p, k) for p in site.names)]
    if not kernels:
        return [f"{where}: no kernel in {site.source}.cu matches {site.names}"]
    problems = []
    for k in kernels:
        params = sigs[site.source][k]
        if len(params) != len(site.args):
            problems.append(f"{where}: {k} takes {len(params)} arguments, the launch passes {len(site.args)}")
            continue
        for i, (p, (kind, code)) in enumerate(zip(params, site.args)):
            bad = None
            if kind == "python-scalar":
                bad = "a Python scalar (CuPy passes it as a 64-bit value): wrap it in a NumPy scalar type"
            elif kind.startswith("scalar:"):
                if p.pointer:
                    bad = "a scalar where the kernel takes a pointer"
                elif p.kind != kind[7:]:
                    bad = f"a {kind[7:]} scalar where the kernel takes {p.kind}"
            elif kind == "dtype":
                want = _precision(k)
                family = {"f32": "f32", "c64": "f32", "f64": "f64", "c128": "f64"}
                if p.pointer or p.kind not in family:
                    bad = "a dtype-dependent scalar where the kernel does not take a floating-point scalar"
                elif want and family[p.kind] != want:
                    bad = f"a dtype-dependent scalar at a {p.kind} parameter of a {want} kernel"
            elif not p.pointer:
                bad = f"an array (or unknown value) where the kernel takes the scalar {p.text!r}"
            if bad:
                problems.append(f"{where}: {k} argument {i} ({code}) for parameter {p.text!r}: {bad}")
    return problems


def test_every_source_parsed():
    assert len(SIGS) == len(_cuda.list_sources()) >= 10
    for src, kernels in SIGS.items():
        assert kernels, f"{src}.cu declares no extern \"C\" kernels"
        for name, params in kernels.items():
            assert params, f"{src}.cu: {name} has no parameters"
            unknown = [p.text for p in params if p.kind and p.kind.startswith("?")]
            assert not unknown, f"{src}.cu: {name} has parameters of unknown scalar type {unknown}"


def test_every_get_function_call_is_a_checked_site():
    calls = {(py.name, n.lineno) for py in KERNELS.glob("*.py") if py.name != "_cuda.py"
             for n in ast.walk(ast.parse(py.read_text())) if _is_get_function(n)}
    assert len(calls) >= 20
    assert calls - ORIGINS == set(), f"get_function calls the checker could not follow to a launch: {sorted(calls - ORIGINS)}"


def test_every_kernel_is_launched():
    launched = set()
    for s in SITES:
        if s.source in SIGS and s.names:
            launched |= {(s.source, k) for k in SIGS[s.source] if any(re.fullmatch(p, k) for p in s.names)}
    declared = {(src, k) for src, ks in SIGS.items() for k in ks}
    assert declared - launched == set(), f"extern \"C\" kernels no Python site launches: {sorted(declared - launched)}"


@pytest.mark.parametrize("site", SITES, ids=[f"{s.file}:{s.line}" for s in SITES])
def test_launch_matches_signature(site):
    problems = check_site(site)
    assert not problems, "\n".join(problems)


# --- the checker itself catches the faults it exists for --------------------------------------------

_FAKE_CU = {"k": {
    "scale_f32": [_parse_param("float* __restrict__ out"), _parse_param("const float* x"),
                  _parse_param("int n"), _parse_param("float a")],
    "scale_f64": [_parse_param("double* out"), _parse_param("const double* x"),
                  _parse_param("int n"), _parse_param("double a")],
}}


def _fake_site(code: str) -> Site:
    tree = ast.parse(code)
    fn = tree.body[0]
    scope = _Scope([fn])
    call = next(n for n in ast.walk(fn) if _is_get_function(n))
    sites = _resolve_launch("fake.py", fn, scope, call, call.args[0].value, call.args[1])
    assert len(sites) == 1
    return sites[0]


GOOD = '''
def f(out, x, a):
    sfx = "f32" if out.dtype == np.float32 else "f64"
    k = _cuda.get_function("k", f"scale_{sfx}", dev)
    k(grid, block, (out, x, np.int32(out.size), out.dtype.type(a)))
'''


def test_checker_accepts_a_correct_launch():
    assert check_site(_fake_site(GOOD), _FAKE_CU) == []


@pytest.mark.parametrize("bad,expect", [
    ("(out, x, np.int32(out.size))", "takes 4 arguments, the launch passes 3"),
    ("(out, x, np.int64(out.size), out.dtype.type(a))", "a i64 scalar where the kernel takes i32"),
    ("(out, x, int(out.size), out.dtype.type(a))", "Python scalar"),
    ("(out, x, out.size, out.dtype.type(a))", "an array (or unknown value) where the kernel takes the scalar"),
    ("(out, np.int32(1), np.int32(out.size), out.dtype.type(a))", "scalar where the kernel takes a pointer"),
    ("(out, x, np.int32(out.size), np.float64(a))", "a f64 scalar where the kernel takes f32"),
    ("(out, x, np.int32(out.size), a)", "an array (or unknown value) where the kernel takes the scalar"),
])
def test_checker_rejects_a_wrong_launch(bad, expect):
    code = GOOD.replace("(out, x, np.int32(out.size), out.dtype.type(a))", bad)
    problems = check_site(_fake_site(code), _FAKE_CU)
    assert any(expect in p for p in problems), problems


def test_checker_sees_unknown_kernel_names():
    code = GOOD.replace('f"scale_{sfx}"', '"scale_f16"')
    assert any("no kernel" in p for p in check_site(_fake_site(code), _FAKE_CU))
