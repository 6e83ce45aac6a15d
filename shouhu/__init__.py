"""Shouhu (守护): shared settings, errors and the single ``shouhu`` command line.

This package is the bottom layer (settings, errors, logging) plus the top-level CLI that
composes the per-package Typer apps. Nothing runs at import time.
"""

__all__: list[str] = []
