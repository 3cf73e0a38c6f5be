"""Where things are, for every test tier: the repository root, the shipped configs, the sources, test artifacts."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = ROOT / "configs"
SRC = ROOT / "src"
ARTIFACTS = ROOT / "test-artifacts"
