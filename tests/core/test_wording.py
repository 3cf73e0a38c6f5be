"""Counts in printed sentences."""

from __future__ import annotations

from handlesim.core.wording import counted


def test_one_node_is_not_one_nodes() -> None:
    assert counted(1, "node") == "1 node"
    assert [counted(n, "node") for n in (0, 2, 1021)] == ["0 nodes", "2 nodes", "1,021 nodes"]
    assert counted(2, "process", "processes") == "2 processes"
