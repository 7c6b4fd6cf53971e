"""Shared test helpers (scripted Strands model providers)."""
