"""The package's import graph, every import included (those inside functions too), and its circles."""

import grimp
import networkx as nx


def import_circles(package: str) -> list[list[str]]:
    """Every set of modules that import each other, directly or through others: the strongly connected
    components of the import graph with more than one module, and any module that imports itself."""
    graph = grimp.build_graph(package)
    imports = nx.DiGraph()
    for module in graph.modules:
        imports.add_node(module)
        imports.add_edges_from((module, imported) for imported in graph.find_modules_directly_imported_by(module))
    circles = [sorted(group) for group in nx.strongly_connected_components(imports) if len(group) > 1]
    return sorted(circles) + [[module] for module in sorted(nx.nodes_with_selfloops(imports))]
