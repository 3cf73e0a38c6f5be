"""Topologies: TOML configuration, the deterministic node plan, seeding, and launching nodes on loopback."""
