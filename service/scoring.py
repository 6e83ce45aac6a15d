"""Scoring and explaining children now, from the features held in the snapshot.

The trees read the snapshot's float matrices directly (``booster.predict`` on a numpy row), so
one child with its explanation costs about a millisecond and a half: one ``pred_contrib`` pass
gives both every feature's contribution and, summed, the raw margin the calibrator maps to
``p_any``. Tiers are decided by ``models.tiers.decide_tier`` with the township's capacity
cut-offs and the child's state after the run in force, so a child whose features did not
change since the run gets the run's tier. Models without a float encoding (the logistic
scorecard) take the slower DataFrame path of ``ModelBundle.predict``.

Nothing here trains or writes: the bundle is the champion the service loaded.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any, Literal

import numpy as np
import pandas as pd

from models.bundle import ANY, ModelBundle
from models.explain import FeatureText, sentence
from models.policy import FiredRule, Tier, TierPolicy, rule_hits
from models.tiers import TierDecision, decide_tier
from service.snapshot import FloatMatrix, Snapshot
from shouhu.errors import NotFoundError

Lang = Literal["zh", "en"]


@dataclass(frozen=True)
class Reason:
    """One feature's contribution to one child's score, as a sentence in both languages."""

    feature: str
    domain: str
    direction: Literal["raises", "lowers"]
    contribution: float
    value: Any
    zh: str
    en: str

    def text(self, lang: Lang) -> str:
        """The sentence in ``lang``."""
        return self.zh if lang == "zh" else self.en


@dataclass(frozen=True)
class ChildScore:
    """A child scored now: calibrated risk, its band, the tier decision and the reasons."""

    child_id: str
    as_of: date
    p_any: float
    p_low: float
    p_high: float
    domains: dict[str, float]
    margin: float
    bias: float
    decision: TierDecision
    village_code: str | None
    reasons: tuple[Reason, ...]
    tier_in_force: Tier | None

    @property
    def tier(self) -> Tier:
        """The tier decided now."""
        return self.decision.tier


def _plain(value: Any, text: FeatureText | None) -> Any:
    """A feature value as JSON-ready Python (``None`` when missing)."""
    if value is None or value is pd.NA:
        return None
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, pd.Timestamp):
        return value.date().isoformat()
    if text is not None and isinstance(value, float):
        if text.kind == "flag":
            return bool(value)
        if text.kind == "count" or (text.kind == "days_since" and value.is_integer()):
            return int(value)
    return value


class Scorer:
    """Score and explain children of one snapshot with one bundle and policy.

    Parameters
    ----------
    bundle : ModelBundle
        The champion.
    policy : TierPolicy
        The tier policy in force.
    snapshot : Snapshot
        Features, encodings and area cut-offs.
    texts : dict of str to FeatureText
        ``models.explain.feature_texts()`` (domains and kinds of features).
    """

    def __init__(
        self,
        bundle: ModelBundle,
        policy: TierPolicy,
        snapshot: Snapshot,
        texts: dict[str, FeatureText],
    ) -> None:
        self.bundle = bundle
        self.policy = policy
        self.snapshot = snapshot
        self.texts = texts
        self.names = tuple(bundle.feature_names)
        self._feature_texts = tuple(texts.get(n) for n in self.names)
        self._domains = tuple(t.domain if t is not None else "other" for t in self._feature_texts)
        frame = snapshot.frame
        # The rules of every row in one vectorised pass (a pure function of the row, as the
        # batch engine evaluates them): a request reads its row's fired rules.
        self._fired: list[tuple[FiredRule, ...]] = []
        if len(frame):
            hits = rule_hits(policy, frame).to_numpy(dtype=bool)
            fired = [policy.fired(rule) for rule in policy.rules]
            self._fired = [
                tuple(f for f, hit in zip(fired, row, strict=True) if hit) for row in hits
            ]
        self._feature_values = (
            frame[list(self.names)].astype(object).to_numpy()
            if len(frame)
            else np.empty((0, len(self.names)), dtype=object)
        )
        self._villages = (
            frame["village_code"].astype(object).to_numpy()
            if "village_code" in frame
            else np.empty(0, dtype=object)
        )
        self.fast = bool(snapshot.matrices)

    # -- rows --------------------------------------------------------------------------------

    def row(self, child_id: str) -> int:
        """The snapshot row of ``child_id``.

        Raises
        ------
        NotFoundError
            If the child has no features on the snapshot's date (not registered then).
        """
        pos = self.snapshot.row_of.get(child_id)
        if pos is None:
            day = self.snapshot.as_of.isoformat() if self.snapshot.as_of else "any date"
            raise NotFoundError(f"child {child_id} has no features as of {day}")
        return pos

    def _margins(self, rows: np.ndarray, explain: bool) -> tuple[FloatMatrix, FloatMatrix | None]:
        """Raw margins of the ``any`` model, and every contribution when ``explain``."""
        if self.fast:
            matrix = self.snapshot.matrices[ANY][rows]
            booster = self.bundle.models[ANY].model.booster_
            if explain:
                contrib = np.asarray(
                    booster.predict(matrix, pred_contrib=True, num_threads=1), dtype=np.float64
                )
                return contrib.sum(axis=1), contrib
            raw = booster.predict(matrix, raw_score=True, num_threads=1)
            return np.asarray(raw, dtype=np.float64), None
        from models.calibration import model_scores
        from models.explain import contributions

        part = self.snapshot.frame.iloc[rows]
        margins = model_scores(self.bundle.models[ANY].model, part[list(self.names)])
        if not explain:
            return np.asarray(margins, dtype=np.float64), None
        return np.asarray(margins, dtype=np.float64), contributions(self.bundle, part, n_threads=1)

    def _domain_probabilities(self, rows: np.ndarray) -> dict[str, FloatMatrix]:
        out: dict[str, FloatMatrix] = {}
        for outcome, calibrated in self.bundle.models.items():
            if outcome == ANY:
                continue
            if self.fast:
                booster = calibrated.model.booster_
                raw = booster.predict(
                    self.snapshot.matrices[outcome][rows], raw_score=True, num_threads=1
                )
                out[outcome] = calibrated.calibrator.predict(np.asarray(raw, dtype=np.float64))
            else:
                part = self.snapshot.frame.iloc[rows][list(self.names)]
                out[outcome] = calibrated.predict_proba(part)[:, 1]
        return out

    def _reasons(
        self,
        row: int,
        contrib: FloatMatrix,
        top: int | None,
        per_domain: int,
        only_shown: bool = False,
    ) -> tuple[Reason, ...]:
        """Every non-zero contribution, largest first; worded only when shown (the ``top``
        overall and ``per_domain`` in each domain; all when ``top`` is None). With
        ``only_shown``, the others are left out."""
        values = contrib[: len(self.names)]
        order = np.argsort(-np.abs(values), kind="stable")
        out: list[Reason] = []
        per: dict[str, int] = {}
        for j in order:
            c = float(values[j])
            if c == 0.0:
                break  # sorted by magnitude: the rest contribute nothing either
            name, domain = self.names[j], self._domains[j]
            per[domain] = per.get(domain, 0) + 1
            shown = top is None or len(out) < top or per[domain] <= per_domain
            if only_shown and not shown:
                if per_domain == 0:
                    break  # the top are taken and no domain asks for more
                continue
            value = _plain(self._feature_values[row, j], self._feature_texts[j]) if shown else None
            zh, en = sentence(name, value) if shown else ("", "")
            out.append(
                Reason(
                    feature=name,
                    domain=domain,
                    direction="raises" if c > 0 else "lowers",
                    contribution=c,
                    value=value,
                    zh=zh,
                    en=en,
                )
            )
        return tuple(out)

    # -- scoring -----------------------------------------------------------------------------

    def score(
        self,
        child_ids: Sequence[str],
        *,
        explain: bool = True,
        top: int | None = 5,
        per_domain: int = 3,
        only_shown: bool = False,
    ) -> list[ChildScore]:
        """Score children now, with their reasons when ``explain``.

        Parameters
        ----------
        child_ids : sequence of str
            Children with features in the snapshot (see :meth:`row`).
        explain : bool, default=True
            Compute every contribution and the reasons (about 1.5 ms per child).
        top : int or None, default=5
            Reasons worded in full; ``None`` words every one (others keep their numbers and
            empty sentences).
        per_domain : int, default=3
            Reasons worded in each domain besides the ``top``.
        only_shown : bool, default=False
            Keep only the worded reasons (a score's ``top`` reasons, as the API returns
            them), not every non-zero contribution (explanations and the waterfall need all).

        Returns
        -------
        list of ChildScore
            In the order asked.

        Raises
        ------
        NotFoundError
            If a child has no features on the snapshot's date.
        """
        if not child_ids:
            return []
        assert self.snapshot.as_of is not None  # a snapshot with rows has a date
        rows = np.asarray([self.row(c) for c in child_ids], dtype=np.int64)
        margins, contrib = self._margins(rows, explain)
        predicted = self.snapshot.predicted
        if predicted:
            # The snapshot's batch pass over the same rows (see service.snapshot).
            p_any, p_low, p_high = (predicted[c][rows] for c in ("p_any", "p_low", "p_high"))
            domains = {o: predicted[f"p_{o}"][rows] for o in self.bundle.outcomes if o != ANY}
        else:
            calibrator = self.bundle.models[ANY].calibrator
            p_any = calibrator.predict(margins)
            p_low, p_high = calibrator.predict_interval(margins)
            domains = self._domain_probabilities(rows)
        n_features = len(self.names)
        out: list[ChildScore] = []
        for k, (child, row) in enumerate(zip(child_ids, rows, strict=True)):
            township = self.snapshot.township[row]
            bands = self.snapshot.model_tiers
            decision = decide_tier(
                self.policy,
                p_any=float(p_any[k]),
                fired=self._fired[row],
                thresholds=self.snapshot.thresholds.get(str(township)),
                model_tier=bands[row] if bands and predicted else None,
                previous=self.snapshot.previous_state(child),
                p_low=float(p_low[k]),
                p_high=float(p_high[k]),
            )
            in_force = self.snapshot.previous_state(child)
            reasons = (
                self._reasons(int(row), contrib[k], top, per_domain, only_shown)
                if contrib is not None
                else ()
            )
            village = self._villages[row] if len(self._villages) else None
            out.append(
                ChildScore(
                    child_id=child,
                    as_of=self.snapshot.as_of,
                    p_any=float(p_any[k]),
                    p_low=float(p_low[k]),
                    p_high=float(p_high[k]),
                    domains={f"p_{o}": float(v[k]) for o, v in domains.items()},
                    margin=float(margins[k]),
                    bias=float(contrib[k][n_features]) if contrib is not None else math.nan,
                    decision=decision,
                    village_code=None if not isinstance(village, str) else village,
                    reasons=reasons,
                    tier_in_force=None if in_force is None else in_force.tier,
                )
            )
        return out


__all__ = ["ChildScore", "Lang", "Reason", "Scorer"]
