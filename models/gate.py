"""The champion gate: a model must beat both simple baselines before it may score children.

Published early-warning work finds that simple rules (a count of warning signs, as in the
"ABC" dropout flags) and area-level targeting (Perdomo et al. on Wisconsin's DEWS) often do
about as well as individual risk scores. So a trained model may become champion only if its
precision at capacity beats **both** baselines in at least :data:`REQUIRED_FOLDS` rolling time
folds (style rule 10 windows, ``models.splits.rolling_time_folds``). Training computes the gate
(``models.train``) and records it on the run as the tags :data:`GATE_TAG` and
:data:`GATE_REASON_TAG`; :func:`check_champion_gate` (``models.promotion``, re-exported here)
reads them, and ``ModelRegistry.promote`` calls it before any promotion.

This module is light on purpose (no LightGBM, no training code); the service never needs it:
the registry reads the recorded verdict through ``models.promotion``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from models.promotion import FAILED, GATE_REASON_TAG, GATE_TAG, PASSED, check_champion_gate

#: Folds in which the model must beat both baselines.
REQUIRED_FOLDS = 2
#: The baselines the model must beat, by the name used in evaluation tables.
GATE_BASELINES: tuple[str, ...] = ("warning_signs", "village_rate")


@dataclass(frozen=True)
class GateFold:
    """Precision at capacity of the model and each baseline in one time fold.

    Parameters
    ----------
    index : int
        Fold number, oldest first.
    test_window : mapping
        ``start`` and ``end`` of the fold's test as-of dates (ISO strings).
    model : float
        The model's precision at capacity.
    baselines : mapping of str to float
        Each baseline's precision at capacity on the same rows.
    """

    index: int
    test_window: Mapping[str, Any]
    model: float
    baselines: Mapping[str, float]

    @property
    def beats(self) -> dict[str, bool]:
        """Whether the model's precision is strictly above each baseline's (NaN never beats)."""
        return {
            name: not math.isnan(self.model) and not math.isnan(v) and self.model > v
            for name, v in self.baselines.items()
        }

    @property
    def passed(self) -> bool:
        """The model beat every gate baseline in this fold."""
        beats = self.beats
        return all(beats.get(name, False) for name in GATE_BASELINES)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict.

        Returns
        -------
        dict
            Fold, window, precisions, and which baselines the model beat.
        """
        return {
            "fold": self.index,
            "test_window": dict(self.test_window),
            "model": _plain(self.model),
            "baselines": {k: _plain(v) for k, v in self.baselines.items()},
            "beats": self.beats,
            "passed": self.passed,
        }


def _plain(value: float) -> float | None:
    return None if math.isnan(value) else round(float(value), 6)


@dataclass(frozen=True)
class ChampionGate:
    """The gate over all folds.

    Parameters
    ----------
    folds : sequence of GateFold
        Every evaluated fold, oldest first.
    required : int, default=REQUIRED_FOLDS
        Folds the model must win.
    """

    folds: Sequence[GateFold]
    required: int = REQUIRED_FOLDS

    @property
    def folds_passed(self) -> int:
        """Folds in which the model beat both baselines."""
        return sum(f.passed for f in self.folds)

    @property
    def passed(self) -> bool:
        """Whether the model may become champion."""
        return self.folds_passed >= self.required

    @property
    def status(self) -> str:
        """``passed`` or ``failed``."""
        return PASSED if self.passed else FAILED

    def reason(self) -> str:
        """One line a reviewer can read.

        Returns
        -------
        str
            How many folds the model won against both baselines, out of how many.
        """
        won = self.folds_passed
        verdict = "passed" if self.passed else "failed"
        text = (
            f"champion gate {verdict}: the model's precision at capacity beat both the "
            f"warning-sign count and the village ranker in {won} of {len(self.folds)} time "
            f"folds ({self.required} required)"
        )
        if len(self.folds) < self.required:
            text += f"; only {len(self.folds)} fold(s) could be formed from the history"
        return text

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict.

        Returns
        -------
        dict
            Status, reason, counts and per-fold figures.
        """
        return {
            "status": self.status,
            "passed": self.passed,
            "folds_passed": self.folds_passed,
            "required": self.required,
            "reason": self.reason(),
            "folds": [f.to_dict() for f in self.folds],
        }


__all__ = [
    "FAILED",
    "GATE_BASELINES",
    "GATE_REASON_TAG",
    "GATE_TAG",
    "PASSED",
    "REQUIRED_FOLDS",
    "ChampionGate",
    "GateFold",
    "check_champion_gate",
]
