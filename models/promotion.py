"""What a promotion reads from a training run: the champion gate's recorded verdict.

Training (``models.gate``, ``models.train``) decides whether a model beat both simple baselines
in enough time folds and records the verdict as two run tags; :func:`check_champion_gate` reads
them back. The reading side lives apart from the gate's computation so that the model registry,
which every part of the product imports to load the champion, can refuse a failed gate inside
``ModelRegistry.promote`` without pulling training code along.
"""

from __future__ import annotations

from collections.abc import Mapping

from shouhu.errors import PromotionRefusedError

#: Run tag holding ``passed`` or ``failed``.
GATE_TAG = "shouhu.champion_gate"
#: Run tag holding the gate's one-line explanation.
GATE_REASON_TAG = "shouhu.champion_gate_reason"
PASSED, FAILED = "passed", "failed"


def check_champion_gate(run_tags: Mapping[str, str], version: int | str) -> None:
    """Refuse a promotion whose training run recorded a failed gate.

    A version whose run carries no gate tag was not trained by ``models.train`` (for example
    a hand-built bundle in a test); it is let through, and the registry's own checks apply.

    Parameters
    ----------
    run_tags : mapping of str to str
        Tags of the version's training run.
    version : int or str
        The version, for the message.

    Raises
    ------
    PromotionRefusedError
        If the gate tag says anything but ``passed``.
    """
    status = run_tags.get(GATE_TAG)
    if status is not None and status != PASSED:
        reason = run_tags.get(GATE_REASON_TAG, "the model did not beat both baselines")
        raise PromotionRefusedError(f"version {version} was not promoted: {reason}")


__all__ = ["FAILED", "GATE_REASON_TAG", "GATE_TAG", "PASSED", "check_champion_gate"]
