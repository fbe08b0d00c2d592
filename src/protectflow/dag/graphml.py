"""GraphML export: a HookDAG or a resource graph for graph tools (yEd, Gephi, networkx).

The file is what :func:`networkx.write_graphml_xml` writes of the graph's
``to_networkx()``, node and edge attributes included, so
:func:`networkx.read_graphml` gives the same graph back. The pure-Python
writer is used rather than lxml's, so the bytes do not depend on whether lxml
happens to be installed.
"""

from __future__ import annotations

import io
import re
from typing import TYPE_CHECKING, Any, Protocol

from protectflow.errors import GraphExportError

if TYPE_CHECKING:
    import networkx as nx

__all__ = ["SupportsNetworkx", "to_graphml"]

#: Characters XML 1.0 cannot hold (most C0 controls, lone surrogates, U+FFFE,
#: U+FFFF), and CR, which a reader turns into LF in element text.
_NOT_IN_XML = re.compile("[\x00-\x08\x0b-\x1f\ud800-\udfff\ufffe\uffff]")


class SupportsNetworkx(Protocol):
    """A graph that converts itself: :class:`~protectflow.dag.HookDAG` and
    :class:`~protectflow.compiler.ResourceGraph`."""

    def to_networkx(self) -> nx.DiGraph: ...


def _check_text(graph: nx.DiGraph) -> None:
    values: list[Any] = [*graph.graph.values()]
    for node, data in graph.nodes(data=True):
        values += [node, *data.values()]
    for _, _, data in graph.edges(data=True):
        values += data.values()
    for value in values:
        found = _NOT_IN_XML.search(value) if isinstance(value, str) else None
        if found:
            raise GraphExportError(
                f"GraphML cannot hold {value!r}: XML has no way to write the character "
                f"U+{ord(found.group()):04X}; export the DAG as JSON or DOT instead", value)


def to_graphml(graph: SupportsNetworkx) -> bytes:
    """The GraphML document (UTF-8) of a HookDAG or a ResourceGraph.

    Parameters
    ----------
    graph : HookDAG or ResourceGraph
        Anything with a ``to_networkx()`` whose attributes are strings,
        numbers or booleans.

    Returns
    -------
    bytes
        The document, the same bytes for the same graph.

    Raises
    ------
    GraphExportError
        If a node id or an attribute holds a character XML cannot write
        (a control character such as ``\\x01``, or a carriage return).
    """
    # networkx is imported here, not at the top, so that `import protectflow`
    # does not pay for it.
    import networkx as nx

    digraph = graph.to_networkx()
    _check_text(digraph)
    out = io.BytesIO()
    nx.write_graphml_xml(digraph, out)
    return out.getvalue()
