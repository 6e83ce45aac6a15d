"""Benchmarks: speed and memory figures printed by ``make bench`` (never pass/fail tests)."""
