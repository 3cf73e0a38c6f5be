"""Counts in the sentences handlesim prints: "1 node", "2 nodes" (a one-node topology is not "1 nodes")."""

from __future__ import annotations


def counted(count: int, singular: str, plural: str = "") -> str:
    """`count` and the noun in the number it takes; `plural` for the irregular ones (default: singular + "s")."""
    return f"{count:,} {singular if count == 1 else plural or singular + 's'}"
