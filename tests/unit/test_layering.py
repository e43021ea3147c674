"""The package layout is the architecture: imports point one way (issue 15).

Parsed with ``ast`` from the source (every import, also those inside functions):

- ``zk/`` is a pure library: from ``marketplace`` it may use only the leaf modules
  ``marketplace.errors`` and ``marketplace.paths``, and it never talks to a chain (no
  web3, eth_account); its chain side is ``marketplace/chain/verifier.py``;
- ``marketplace/chain/`` (the one chain layer) does not import ``drag``;
- no package imports one that imports it back, directly or through others. A package
  here is ``drag``, ``zk``, and each subpackage or top-level module of ``marketplace``.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TOPS = ("marketplace", "drag", "zk")
ZK_MAY_USE = {"marketplace.errors", "marketplace.paths"}
CHAIN_LIBRARIES = ("web3", "eth_account", "eth_tester")


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports() -> dict[str, set[str]]:
    """Module -> every module it imports (absolute names, relative ones resolved)."""
    out: dict[str, set[str]] = {}
    for top in TOPS:
        for path in sorted((ROOT / top).rglob("*.py")):
            name = _module_name(path)
            package = name if path.name == "__init__.py" else name.rpartition(".")[0]
            found: set[str] = set()
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.Import):
                    found.update(alias.name for alias in node.names)
                elif isinstance(node, ast.ImportFrom):
                    base = node.module or ""
                    if node.level:
                        anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                        base = ".".join([*anchor, *([base] if base else [])])
                    found.add(base)
                    found.update(f"{base}.{alias.name}" for alias in node.names)
            out[name] = found
    return out


def unit(module: str) -> str | None:
    """The package ``module`` belongs to, or None outside LedgerLearn."""
    parts = module.split(".")
    if parts[0] not in TOPS:
        return None
    if parts[0] == "marketplace" and len(parts) > 1:
        return ".".join(parts[:2])
    return parts[0]


def package_graph(modules: dict[str, set[str]]) -> dict[str, set[str]]:
    graph: dict[str, set[str]] = defaultdict(set)
    for module, imported in modules.items():
        src = unit(module)
        for target in imported:
            dst = unit(target)
            if src and dst and dst != src and dst != "marketplace":
                graph[src].add(dst)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle per strongly connected component of more than one package (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


MODULES = imports()


def _offenders(prefix: str, bad: object) -> list[str]:
    return sorted(
        f"{module} imports {target}"
        for module, targets in MODULES.items()
        if module == prefix or module.startswith(prefix + ".")
        for target in targets
        if bad(target)  # type: ignore[operator]
    )


def test_zk_is_a_pure_library() -> None:
    assert "zk.onchain" in MODULES and "marketplace.chain.verifier" in MODULES

    def bad(target: str) -> bool:
        top = target.split(".")[0]
        if top == "marketplace":
            return target != "marketplace" and not any(
                target == ok or target.startswith(ok + ".") for ok in ZK_MAY_USE
            )
        return top in CHAIN_LIBRARIES or top == "drag"

    assert _offenders("zk", bad) == []


def test_the_chain_layer_does_not_import_drag() -> None:
    assert _offenders("marketplace.chain", lambda t: t.split(".")[0] == "drag") == []


def test_package_imports_point_one_way() -> None:
    graph = package_graph(MODULES)
    assert {"marketplace.chain", "marketplace.cli", "drag", "zk"} <= set(graph)
    assert cycles(graph) == []


def test_the_cycle_finder_finds_direct_and_indirect_cycles() -> None:
    assert cycles({"a": {"b"}, "b": {"a"}}) == [["a", "b"]]
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": {"c"}}) == []
    graph = package_graph({"zk.x": {"marketplace.chain.tx"}, "marketplace.chain.v": {"zk.y"}})
    assert cycles(graph) == [["marketplace.chain", "zk"]]
