"""The package's import graph has no cycles, and each layer imports only its own and lower layers.

Layers, lowest first (a module belongs to the layer whose prefix matches it):

    0  foundation     errors, config, distributed, files, pcm
    1  dsp            dsp                          signal processing: STFT/mel, pitch tracking, oscillator
    2  networks       modules, quantization        nn building blocks
    3  models         models                       codecs: tensors -> codes -> tensors
    4  storage        audio, bitstream, checkpoint, chunked, data, entropy, onnx_backend, releases
    5  codec API      compress, identity, tokenize, detokenize, hificodec (the package's __init__)
    6  evaluation     eval
    7  training       train
    8  applications   cli, demo, __main__

So models never reach files, bitstreams, the CLI, training or evaluation, and evaluation never
reaches training. Imports inside functions count as much as top-level ones: they tie the modules
together all the same (a lazy import is how a cycle hides).
"""

from __future__ import annotations

import ast
from pathlib import Path

import hificodec

PACKAGE = "hificodec"
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("foundation", ("errors", "config", "distributed", "files", "pcm")),
    ("dsp", ("dsp",)),
    ("networks", ("modules", "quantization")),
    ("models", ("models",)),
    ("storage", ("audio", "bitstream", "checkpoint", "chunked", "data", "entropy", "onnx_backend", "releases")),
    ("codec API", ("compress", "identity", "tokenize", "detokenize", "")),  # "": the package's own __init__
    ("evaluation", ("eval",)),
    ("training", ("train",)),
    ("applications", ("cli", "demo", "__main__")),
]


def package_modules(root: Path) -> dict[str, Path]:
    """Dotted module name -> file, for every module of the package at `root`."""
    modules = {}
    for path in sorted(root.rglob("*.py")):
        parts = (PACKAGE, *path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        modules[".".join(parts)] = path
    return modules


def layer_of(module: str) -> int:
    """Index into LAYERS of a dotted module name (AssertionError for a module no layer claims)."""
    top = module.split(".")[1] if "." in module else ""
    for index, (_, prefixes) in enumerate(LAYERS):
        if top in prefixes:
            return index
    raise AssertionError(f"{module} belongs to no layer: add its top-level name to LAYERS in {__file__}")


def _contains(package: str, module: str) -> bool:
    return module == package or module.startswith(package + ".")


def imports_of(module: str, modules: dict[str, Path]) -> set[str]:
    """Package modules that `module` imports anywhere in its file, plus the packages whose __init__
    such an import runs first (except the importer's own ancestors, which are already running)."""
    tree = ast.parse(modules[module].read_text(encoding="utf-8"))
    here = module if modules[module].name == "__init__.py" else module.rpartition(".")[0]
    named: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            named.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = here.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            # `from base import x`: the submodule base.x when there is one, else a name defined in base
            named.update(f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names)
    edges = set()
    for name in named:
        parts = name.split(".")
        if parts[0] != PACKAGE:
            continue
        if name in modules and name != module:
            edges.add(name)
        for depth in range(1, len(parts)):
            ancestor = ".".join(parts[:depth])
            if ancestor in modules and not _contains(ancestor, module):
                edges.add(ancestor)
    return edges


def import_graph() -> dict[str, set[str]]:
    modules = package_modules(Path(hificodec.__file__).parent)
    return {module: imports_of(module, modules) for module in modules}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_package_has_no_import_cycles():
    found = cycles(import_graph())
    assert not found, "import cycles (each line: modules that import each other):\n" + "\n".join(
        " <-> ".join(component) for component in found
    )


def test_each_layer_imports_only_its_own_and_lower_layers():
    graph = import_graph()
    upward = sorted(
        f"{module} ({LAYERS[layer_of(module)][0]}) imports {target} ({LAYERS[layer_of(target)][0]})"
        for module, targets in graph.items()
        for target in targets
        if layer_of(target) > layer_of(module)
    )
    assert not upward, "imports against the layer order:\n" + "\n".join(upward)


def test_the_graph_sees_imports_inside_functions_and_relative_forms():
    graph = import_graph()
    assert "hificodec.dsp.pitch" in graph["hificodec.eval.metrics"]  # imported inside a function
    assert "hificodec.models.base" in graph["hificodec.chunked"]  # `from .models.base import ...`
    assert "hificodec.models" in graph["hificodec.checkpoint"]  # the package's __init__ runs
    assert "hificodec" in graph["hificodec.eval.summary"]  # `from .. import __version__`
    assert "hificodec.train" not in graph["hificodec.train.export"]  # its own package: already running
