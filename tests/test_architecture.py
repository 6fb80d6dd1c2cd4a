"""The layering rules of docs/architecture.md, checked on the source tree: the Python package imports
only downward (no import cycle, lazy imports inside functions included), the C++ core reaches the
backends only through core/backend.h, and every kernel family has one file per layer."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "python" / "ember"
CSRC = ROOT / "csrc"

pytestmark = pytest.mark.skipif(not (PACKAGE.is_dir() and CSRC.is_dir()), reason="needs the source tree")


# ---- Python -------------------------------------------------------------------------------------

def _modules():
    """Dotted name -> path of every module of the package (a package is its __init__)."""
    mods = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        mods[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return mods


def _is_type_checking_block(node):
    return isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)


def _import_nodes(tree):
    """Every import statement, at any depth (lazy imports in functions count), but for
    `if TYPE_CHECKING:` blocks, which never run."""
    stack = list(tree.body)
    while stack:
        node = stack.pop()
        if _is_type_checking_block(node):
            continue
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        stack.extend(ast.iter_child_nodes(node))


def _imported(name, mods, node, package):
    """The ember modules an import statement loads, as names in mods."""
    if isinstance(node, ast.Import):
        return [a.name for a in node.names if a.name in mods]
    if node.level:
        base = package.split(".")[: len(package.split(".")) - node.level + 1]
        target = ".".join(base + ([node.module] if node.module else []))
    else:
        target = node.module or ""
    out = []
    for alias in node.names:
        sub = f"{target}.{alias.name}"
        if sub in mods:
            out.append(sub)      # `from pkg import module`
        elif alias.name != "_C" and target in mods:
            out.append(target)   # `from module import name` (the extension _C sits below everything)
    return out


def _ancestors(name):
    parts = name.split(".")
    return {".".join(parts[:i]) for i in range(1, len(parts))}


def import_graph():
    """module -> modules it loads. Loading a.b.c first runs the __init__ of each package above it, so
    those count as well, except the packages that also contain the importer (whose __init__ has
    already started by then)."""
    mods = _modules()
    graph = {}
    for name, path in mods.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        deps = set()
        for node in _import_nodes(ast.parse(path.read_text(), str(path))):
            for target in _imported(name, mods, node, package):
                deps.add(target)
                deps |= {p for p in _ancestors(target) if p in mods} - _ancestors(name) - {name}
        deps.discard(name)
        graph[name] = deps
    return graph


def find_cycle(graph):
    """One import cycle as a list of modules (first == last), or None."""
    state, path = {}, []

    def visit(node):
        state[node] = "open"
        path.append(node)
        for dep in sorted(graph[node]):
            if state.get(dep) == "open":
                return path[path.index(dep):] + [dep]
            if dep not in state:
                cycle = visit(dep)
                if cycle:
                    return cycle
        state[node] = "done"
        path.pop()
        return None

    for node in sorted(graph):
        if node not in state:
            cycle = visit(node)
            if cycle:
                return cycle
    return None


def test_python_layers_import_only_downward():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_cycle_finder_sees_lazy_and_package_cycles():
    """The check above can fail: a cycle through a function-level import or a package __init__."""
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None
    graph = import_graph()
    assert "ember.tensor" in graph["ember.ops.elementwise"]
    assert "ember.autograd" in graph["ember.ops._util"]  # through ember.autograd.graph: its __init__ runs
    graph["ember.tensor"] = graph["ember.tensor"] | {"ember.ops.shape"}  # what tensor.py's lazy imports did
    assert find_cycle(graph) is not None


def test_tensor_is_the_bottom_layer():
    """tensor.py imports only the extension, dtypes and device: its op methods are bound from above."""
    assert import_graph()["ember.tensor"] <= {"ember.dtypes", "ember.device"}


# ---- C++ ----------------------------------------------------------------------------------------

def _includes(path):
    return [line.split()[1].strip('"<>') for line in path.read_text().splitlines()
            if line.startswith("#include")]


@pytest.mark.parametrize("layer", ["core", "bindings"])
def test_core_and_bindings_reach_backends_only_through_backend_h(layer):
    bad = [(p.name, inc) for p in sorted((CSRC / layer).iterdir()) if p.suffix in (".h", ".cpp")
           for inc in _includes(p) if inc.startswith(("cpu/", "cuda/"))]
    assert not bad, f"csrc/{layer} includes backend internals: {bad}"


def _families(folder, suffix):
    return {p.stem for p in (CSRC / folder).glob(f"*{suffix}")}


def test_one_file_per_kernel_family_on_every_layer():
    cpu, cuda = _families("cpu", ".cpp"), _families("cuda", ".cu")
    assert cpu == cuda, f"cpu/ and cuda/ differ: {sorted(cpu ^ cuda)}"
    core = _families("core", ".cpp")
    # memory is the allocator: Array (core/array.cpp) calls it; every other family has its op setup
    # in core/<family>.cpp.
    missing = sorted(cpu - {"memory"} - core)
    assert not missing, f"kernel families without a core/<family>.cpp: {missing}"
