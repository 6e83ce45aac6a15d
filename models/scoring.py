"""Scoring runs: every registered child on a date gets a calibrated risk, a tier and its reasons.

:func:`score` is what the weekly (or monthly) run calls, and what the service will call: it
needs a feature store, a tier policy and, when there is a champion, a :class:`ModelBundle`. It
never imports training code.

Order of a run, and why:

1. **Freshness guard** before anything is computed: the newest ledger record must be at most
   ``input_guards.max_staleness_days`` old on the scoring date (point in time: records
   entered after the date do not count). Stale ledgers make every "days since" feature and
   every 90-day count wrong at once. Each source's age is reported with the run.
2. Features of every child registered on the date (the one point-in-time retrieval).
3. With a model: **missing-rate guard** (a feature whose share of missing values rose by more
   than ``max_missing_rate_jump`` against the model's training reference means a broken
   delivery or mapping, not a change in the children), then the calibrated probabilities,
   then the **spread guard** (``p_any`` with a standard deviation below ``min_score_spread``
   means a degenerate model or input).
4. Tiers (``models.tiers.assign_tiers``): hard rules and floor rules run from the features
   alone, so with no champion (``bundle=None``) rule-triggered children still get their
   tiers; the run then reports that model tiers are missing. The people's part comes in as
   plain data (this package never reads the operational database): the fall confirmations
   made since the previous run let held falls take effect, and the reviewers' overrides in
   force are applied last, never below a floor or a hard rule. Each row records which
   override and which confirmation it took (``override_id``, ``confirmation_id``) and the
   engine's own tier before the override (``computed_tier``).
5. Reasons: the top factors of each child's ``p_any`` from ``models.explain.explain_frame``
   (exact tree contributions rendered as sentences from the feature registry), for every
   child or, with ``explain_tiers``, only for the tiers a person acts on at once (the rest
   on demand with ``models.explain.explain_child``).

A guard stops the run with a named error (``shouhu.errors.InputGuardError`` subclasses) before
anything is stored: no partial run ever exists. :class:`ScoreStore` keeps every run in a DuckDB
file of its own (``$SHOUHU_HOME/scores.duckdb``; the feature store belongs to the features
package) and the previous run's tier state feeds the hysteresis of the next.

Every stored row carries the model name and version, the policy version and fingerprint and the
feature-definitions fingerprint (style rule 12).
"""

from __future__ import annotations

import json
import logging
import math
import time
import uuid
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from features.definitions import definitions_fingerprint
from features.store import FeatureStore
from models.bundle import ANY, OUTCOMES, ModelBundle
from models.dataset import capacity_areas, source_freshness
from models.explain import explain_frame
from models.policy import TierPolicy
from models.tiers import assign_tiers
from shouhu.errors import (
    InsufficientDataError,
    MissingRateJumpError,
    PolicyError,
    ScoreCollapseError,
    StaleDataError,
)

logger = logging.getLogger(__name__)

#: Key of the training reference (missing rates) inside the ``any`` entry of a bundle's metrics.
INPUT_PROFILE_KEY = "input_profile"

#: Fewer children than this and the spread of the scores says nothing (one child has none).
_MIN_ROWS_FOR_SPREAD = 10

DOMAIN_COLUMNS: tuple[str, ...] = tuple(f"p_{o}" for o in OUTCOMES if o != ANY)

#: The reviewers' overrides in force that a run takes (``service.workflow.reviews`` reads them
#: from the operational database): the child, the tier set, the reviewer's policy role
#: (``caseworker``/``supervisor``), who (a pseudonymous reference such as ``user:12``, never a
#: name) and the written reason. An optional ``override_id`` names the override there.
OVERRIDE_COLUMNS: tuple[str, ...] = ("child_id", "tier", "role", "reviewer", "reason")
#: The fall confirmations made since the previous run: the child and the policy role that
#: confirmed (the most senior one). An optional ``confirmation_id`` names the review.
CONFIRMATION_COLUMNS: tuple[str, ...] = ("child_id", "confirmed_by")

#: One reason: a feature's contribution to a child's ``p_any`` (``models.explain`` records).
REASON_TYPE = pa.struct(
    [
        ("feature", pa.string()),
        ("domain", pa.string()),
        ("direction", pa.string()),
        ("contribution", pa.float64()),
        ("value", pa.string()),
        ("zh", pa.string()),
        ("en", pa.string()),
    ]
)

#: Columns of a scoring run, in order (cli.md's columns first, then provenance and detail).
SCORE_SCHEMA = pa.schema(
    [
        ("child_id", pa.string()),
        ("as_of", pa.date32()),
        ("p_any", pa.float64()),
        ("p_low", pa.float64()),
        ("p_high", pa.float64()),
        ("borderline", pa.bool_()),
        *((name, pa.float64()) for name in DOMAIN_COLUMNS),
        ("tier", pa.string()),
        ("rules_fired", pa.list_(pa.string())),
        ("reasons", pa.list_(REASON_TYPE)),
        ("model_name", pa.string()),
        ("model_version", pa.int64()),
        ("policy_version", pa.string()),
        ("policy_fingerprint", pa.string()),
        ("feature_fingerprint", pa.string()),
        ("tier_source", pa.string()),
        ("model_tier", pa.string()),
        ("model_available", pa.bool_()),
        ("hard_rule_t1", pa.bool_()),
        ("consecutive_below", pa.int64()),
        ("held_by_hysteresis", pa.bool_()),
        ("awaiting_confirmation", pa.bool_()),
        ("threshold_t2", pa.float64()),
        ("threshold_t3", pa.float64()),
        # The people's part: the engine's tier before any override, the confirmation and the
        # override the run took (ids in the operational database; the reason text stays there).
        ("computed_tier", pa.string()),
        ("fall_confirmed", pa.bool_()),
        ("confirmed_by", pa.string()),
        ("confirmation_id", pa.int64()),
        ("override_applied", pa.bool_()),
        ("override_limited", pa.bool_()),
        ("override_tier", pa.string()),
        ("override_id", pa.int64()),
        ("override_reviewer", pa.string()),
        ("household_pid", pa.string()),
        ("village_code", pa.string()),
        ("township_code", pa.string()),
        ("county_code", pa.string()),
        ("run_id", pa.string()),
        ("scored_at", pa.timestamp("us", tz="UTC")),
    ]
)


# --------------------------------------------------------------------------------------------
# Input guards
# --------------------------------------------------------------------------------------------


def missing_rates(frame: pd.DataFrame, features: Sequence[str]) -> dict[str, float]:
    """Share of missing values of each feature in ``frame``.

    Parameters
    ----------
    frame : DataFrame
        Feature rows.
    features : sequence of str
        Columns to measure.

    Returns
    -------
    dict of str to float
        Feature to its missing share (0 for an empty frame).
    """
    if frame.empty:
        return {name: 0.0 for name in features}
    shares = frame[list(features)].isna().mean()
    return {name: round(float(shares[name]), 6) for name in features}


def reference_missing_rates(bundle: ModelBundle) -> dict[str, float] | None:
    """The missing shares the bundle's models were trained against (``None`` if not recorded).

    Parameters
    ----------
    bundle : ModelBundle
        A bundle from ``models.train``.

    Returns
    -------
    dict of str to float or None
        Feature to its missing share in the training reference window.
    """
    profile = bundle.metrics.get(ANY, {}).get(INPUT_PROFILE_KEY)
    if not isinstance(profile, Mapping):
        return None
    rates = profile.get("missing_rates")
    return {str(k): float(v) for k, v in rates.items()} if isinstance(rates, Mapping) else None


def check_freshness(
    freshness: Mapping[str, date | None], as_of: date, policy: TierPolicy
) -> dict[str, int | None]:
    """Stop when the newest ledger record is too old on the scoring date.

    The guard reads the newest record of all feature sources together: it catches a store
    nobody has fed (a missed delivery, an ingest that did not run). Each source's age is
    returned for the run's report but does not stop it on its own, because sources arrive
    at different paces: term results come twice a year, so their newest record is often
    months old in the middle of a term.

    Parameters
    ----------
    freshness : mapping of str to date or None
        Newest record date of each source known on ``as_of`` (``None``: no record at all).
    as_of : date
        The scoring date.
    policy : TierPolicy
        ``input_guards.max_staleness_days``.

    Returns
    -------
    dict of str to int or None
        Age in days of each source's newest record.

    Raises
    ------
    StaleDataError
        Naming the newest record, its age and the limit.
    """
    limit = policy.input_guards.max_staleness_days
    ages = {s: None if d is None else (as_of - d).days for s, d in freshness.items()}
    known = [d for d in freshness.values() if d is not None]
    newest = max(known) if known else None
    age = None if newest is None else (as_of - newest).days
    if age is None or age > limit:
        found = (
            "no ledger record at all"
            if newest is None
            else (f"the newest ledger record is from {newest.isoformat()}, {age} days old")
        )
        raise StaleDataError(
            f"scoring as of {as_of.isoformat()} stopped: the data are stale: {found}; "
            f"policy {policy.version} allows {limit} days. Ingest the newest batches first."
        )
    return ages


def check_missing_rates(
    current: Mapping[str, float], reference: Mapping[str, float] | None, policy: TierPolicy
) -> dict[str, float]:
    """Stop when a feature's missing share rose beyond the policy's limit against training.

    Parameters
    ----------
    current : mapping of str to float
        Missing shares of this run.
    reference : mapping of str to float or None
        Missing shares of the model's training reference; ``None`` skips the check.
    policy : TierPolicy
        ``input_guards.max_missing_rate_jump``.

    Returns
    -------
    dict of str to float
        Rise of each feature's missing share (negative: fewer missing).

    Raises
    ------
    MissingRateJumpError
        Naming each feature, its missing share now and in training.
    """
    if reference is None:
        return {}
    limit = policy.input_guards.max_missing_rate_jump
    rises = {name: current[name] - reference[name] for name in current if name in reference}
    jumped = {name: rise for name, rise in rises.items() if rise > limit + 1e-12}
    if jumped:
        detail = ", ".join(
            f"{name} {current[name]:.1%} missing (training {reference[name]:.1%})"
            for name in sorted(jumped, key=lambda n: -jumped[n])
        )
        raise MissingRateJumpError(
            f"scoring stopped: missing values jumped against the model's training data: "
            f"{detail}; policy {policy.version} allows a rise of {limit:.0%}. Check the "
            "newest deliveries and the column mapping."
        )
    return {name: round(rise, 6) for name, rise in rises.items()}


def check_spread(p_any: np.ndarray[Any, Any], policy: TierPolicy) -> float:
    """Stop when the run's ``p_any`` collapsed to nearly one value.

    Parameters
    ----------
    p_any : ndarray
        Calibrated probabilities of the run.
    policy : TierPolicy
        ``input_guards.min_score_spread``.

    Returns
    -------
    float
        Standard deviation of ``p_any`` (NaN with fewer than 10 children: not judged).

    Raises
    ------
    ScoreCollapseError
        If the standard deviation is below the policy's minimum.
    """
    values = np.asarray(p_any, dtype=np.float64)
    if len(values) < _MIN_ROWS_FOR_SPREAD:
        return float("nan")
    spread = float(np.std(values))
    limit = policy.input_guards.min_score_spread
    if spread < limit:
        raise ScoreCollapseError(
            f"scoring stopped: p_any of {len(values)} children has a standard deviation of "
            f"{spread:.4f}, below the {limit} policy {policy.version} requires; the model or "
            "its input is degenerate"
        )
    return spread


# --------------------------------------------------------------------------------------------
# Reasons
# --------------------------------------------------------------------------------------------


def reasons_for(
    bundle: ModelBundle, features: pd.DataFrame, *, top_k: int = 5, threads: int | None = 1
) -> list[list[dict[str, Any]]]:
    """Each child's top reasons for ``p_any`` (``models.explain.explain_frame``).

    Parameters
    ----------
    bundle : ModelBundle
        The champion.
    features : DataFrame
        The children's features.
    top_k : int, default=5
        Reasons per child.
    threads : int or None, default=1
        LightGBM threads for the contributions. One by default: OpenMP threads spin-wait,
        and on a machine busy with other work two threads ran ten times slower than one.
        ``None`` uses every core.

    Returns
    -------
    list of list of dict
        Per row, records ``feature, domain, direction, contribution, value, zh, en``.
    """
    # Values as text in the same pass that renders the sentences: a second pass over millions
    # of reason records would cost as much as the first.
    return explain_frame(
        bundle, features, domain=ANY, top_k=top_k, n_threads=threads, text_values=True
    )


# --------------------------------------------------------------------------------------------
# A scoring run
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RunRef:
    """A stored scoring run: its id, scoring date and when it ran (UTC)."""

    run_id: str
    as_of: date
    scored_at: datetime


@dataclass(frozen=True)
class ModelRef:
    """Which registered model a bundle is: name and version, for provenance."""

    name: str
    version: int


def score(
    as_of: date,
    bundle: ModelBundle | None,
    policy: TierPolicy,
    store: FeatureStore,
    previous: pd.DataFrame | None = None,
    *,
    overrides: pd.DataFrame | None = None,
    confirmations: pd.DataFrame | None = None,
    model: ModelRef | None = None,
    top_k: int = 5,
    with_reasons: bool = True,
    explain_tiers: Collection[str] | None = None,
    explain_threads: int | None = 1,
    now: datetime | None = None,
) -> pd.DataFrame:
    """Score every child registered on ``as_of`` and decide their tiers.

    Parameters
    ----------
    as_of : date
        The scoring date.
    bundle : ModelBundle or None
        The champion; ``None`` when there is none (tiers then come from the rules alone).
    policy : TierPolicy
        Rules, capacity, hysteresis and input guards.
    store : FeatureStore
        The feature store.
    previous : DataFrame, optional
        The previous run's tier state (``child_id``, ``tier``,
        ``consecutive_below``, ``hard_rule_t1``), e.g. :meth:`ScoreStore.previous`.
    overrides : DataFrame, optional
        The reviewers' overrides in force (:data:`OVERRIDE_COLUMNS`, optionally
        ``override_id``), one row per child at most. Each is applied after hysteresis and is
        never allowed below a floor or a hard rule, nor to lower a hard-rule T1 without the
        policy's closing role (the row then says ``override_limited``). Overrides of children
        not registered on ``as_of`` are counted in ``attrs["run"]`` and otherwise ignored.
    confirmations : DataFrame, optional
        Fall confirmations made since the previous run (:data:`CONFIRMATION_COLUMNS`,
        optionally ``confirmation_id``). A held fall whose count is reached falls when the
        confirming role has the authority the policy asks for (``fall_confirmed``); without
        one it waits (``awaiting_confirmation``).
    model : ModelRef, optional
        Registry name and version of ``bundle``, stored on every row.
    top_k : int, default=5
        Reasons per child.
    with_reasons : bool, default=True
        Compute the children's reasons. Exact tree contributions cost far more than the
        score; a what-if or test run that does not show reasons can skip them (the
        ``reasons`` lists are then empty).
    explain_tiers : collection of str, optional
        Explain at once only the children whose final tier is one of these (e.g.
        ``{"T1", "T2", "T3"}``: the ones a person acts on this week); the others get empty
        ``reasons`` and are explained on demand (:func:`models.explain.explain_child`).
        ``None`` (default) explains everyone.
    explain_threads : int or None, default=1
        LightGBM threads for the reasons (see :func:`reasons_for`).
    now : datetime, optional
        Time stamp of the run (UTC now by default).

    Returns
    -------
    DataFrame
        One row per child, columns of :data:`SCORE_SCHEMA`. ``attrs["run"]`` holds the run's
        summary (see :func:`summarise`) and the guards' figures.

    Raises
    ------
    StaleDataError, MissingRateJumpError, ScoreCollapseError
        When an input guard stops the run (nothing is returned or stored).
    InsufficientDataError
        If no child is registered on ``as_of``.
    """
    started = time.perf_counter()
    freshness = source_freshness(store.con, as_of)
    ages = check_freshness(freshness, as_of, policy)
    frame = store.build(as_of)
    if frame.empty:
        raise InsufficientDataError(f"no child is registered on {as_of.isoformat()}")
    out = score_frame(
        frame,
        bundle,
        policy,
        previous,
        overrides=overrides,
        confirmations=confirmations,
        model=model,
        top_k=top_k,
        with_reasons=with_reasons,
        explain_tiers=explain_tiers,
        explain_threads=explain_threads,
        now=now,
    )
    out.attrs["run"]["guards"]["source_age_days"] = ages
    out.attrs["run"]["seconds"] = round(time.perf_counter() - started, 2)
    logger.info(
        "scored",
        extra={"as_of": as_of.isoformat(), "children": len(out), "model": bundle is not None},
    )
    return out


def score_frame(
    frame: pd.DataFrame,
    bundle: ModelBundle | None,
    policy: TierPolicy,
    previous: pd.DataFrame | None = None,
    *,
    overrides: pd.DataFrame | None = None,
    confirmations: pd.DataFrame | None = None,
    model: ModelRef | None = None,
    top_k: int = 5,
    with_reasons: bool = True,
    explain_tiers: Collection[str] | None = None,
    explain_threads: int | None = 1,
    now: datetime | None = None,
) -> pd.DataFrame:
    """Score, tier and explain the children of one feature frame (all on one date).

    :func:`score` builds the frame from the store after the freshness guard and calls this;
    a benchmark or a what-if run calls it on a frame it already has. The missing-rate and
    spread guards run here.

    Parameters
    ----------
    frame : DataFrame
        ``FeatureStore.build`` output: one row per child, one as-of date.
    bundle, policy, previous, overrides, confirmations, model, top_k, with_reasons
        As in :func:`score`.
    explain_tiers, explain_threads, now
        As in :func:`score`.

    Returns
    -------
    DataFrame
        As :func:`score` (``attrs["run"]["guards"]["source_age_days"]`` is empty).

    Raises
    ------
    MissingRateJumpError, ScoreCollapseError
        When an input guard stops the run.
    InsufficientDataError
        If the frame has no rows.
    PolicyError
        If ``overrides`` or ``confirmations`` lack a column, list a child twice, or hold a
        tier or role the policy does not know (nothing is scored).
    """
    started = time.perf_counter()
    given_overrides = _review_table(overrides, OVERRIDE_COLUMNS, "override_id", "overrides")
    given_confirmations = _review_table(
        confirmations, CONFIRMATION_COLUMNS, "confirmation_id", "confirmations"
    )
    if frame.empty:
        raise InsufficientDataError("no child to score")
    frame = frame.reset_index(drop=True)
    dates = pd.to_datetime(frame["as_of"])
    if dates.nunique() != 1:
        raise ValueError(f"a scoring frame holds one as-of date, not {dates.nunique()}")
    as_of = date.fromisoformat(f"{dates.iloc[0]:%Y-%m-%d}")
    area = capacity_areas(frame)
    n = len(frame)

    scores = pd.DataFrame(
        np.nan, index=frame.index, columns=["p_any", "p_low", "p_high", *DOMAIN_COLUMNS]
    )
    rises: dict[str, float] = {}
    spread = float("nan")
    if bundle is not None:
        rises = check_missing_rates(
            missing_rates(frame, bundle.feature_names), reference_missing_rates(bundle), policy
        )
        predicted = bundle.predict(frame[list(bundle.feature_names)])
        spread = check_spread(predicted["p_any"].to_numpy(), policy)
        scores.loc[:, predicted.columns] = predicted.to_numpy()

    tier_input = frame.assign(
        **{policy.capacity.area_column: area.to_numpy()},
        p_any=scores["p_any"].to_numpy(),
        p_low=scores["p_low"].to_numpy(),
        p_high=scores["p_high"].to_numpy(),
    )
    state = None if previous is None else _previous_state(previous, given_confirmations)
    tiers = assign_tiers(
        tier_input,
        policy,
        previous=state,
        overrides=None if given_overrides is None else given_overrides[list(OVERRIDE_COLUMNS)],
        id_column="child_id",
    )
    ids = frame["child_id"].astype(str)
    override_of = _by_child(given_overrides, ids, ("tier", "override_id", "reviewer"))
    confirmation_of = _by_child(given_confirmations, ids, ("confirmed_by", "confirmation_id"))

    reasons: list[list[dict[str, Any]]] = [[] for _ in range(n)]
    explained = 0
    if bundle is not None and with_reasons:
        tier_text = tiers["tier"].astype(str).to_numpy()
        wanted = (
            np.ones(n, dtype=bool)
            if explain_tiers is None
            else np.isin(tier_text, sorted({str(t) for t in explain_tiers}))
        )
        rows = np.flatnonzero(wanted)
        if len(rows):
            part = frame.loc[rows, list(bundle.feature_names)]
            for row, found in zip(
                rows.tolist(),
                reasons_for(bundle, part, top_k=top_k, threads=explain_threads),
                strict=True,
            ):
                reasons[row] = found
        explained = len(rows)

    stamp = (now or datetime.now(UTC)).astimezone(UTC)
    out = pd.DataFrame(
        {
            "child_id": frame["child_id"].astype(str).to_numpy(),
            "as_of": as_of,
            "p_any": scores["p_any"].to_numpy(),
            "p_low": scores["p_low"].to_numpy(),
            "p_high": scores["p_high"].to_numpy(),
            "borderline": tiers["borderline"].to_numpy(dtype=bool),
            **{c: scores[c].to_numpy() for c in DOMAIN_COLUMNS},
            "tier": tiers["tier"].astype(str).to_numpy(),
            "rules_fired": [list(r) for r in tiers["rules_fired"]],
            "reasons": reasons,
            "model_name": None if model is None or bundle is None else model.name,
            "model_version": None if model is None or bundle is None else model.version,
            "policy_version": policy.version,
            "policy_fingerprint": policy.fingerprint(),
            "feature_fingerprint": (
                bundle.feature_fingerprint if bundle is not None else definitions_fingerprint()
            ),
            "tier_source": tiers["tier_source"].astype(str).to_numpy(),
            "model_tier": tiers["model_tier"].astype(object).to_numpy(),
            "model_available": tiers["model_available"].to_numpy(dtype=bool),
            "hard_rule_t1": tiers["hard_rule_t1"].to_numpy(dtype=bool),
            "consecutive_below": tiers["consecutive_below"].to_numpy(dtype=np.int64),
            "held_by_hysteresis": tiers["held_by_hysteresis"].to_numpy(dtype=bool),
            "awaiting_confirmation": tiers["awaiting_confirmation"].to_numpy(dtype=bool),
            "threshold_t2": tiers["threshold_t2"].to_numpy(dtype=np.float64),
            "threshold_t3": tiers["threshold_t3"].to_numpy(dtype=np.float64),
            "computed_tier": tiers["computed_tier"].astype(str).to_numpy(),
            "fall_confirmed": tiers["fall_confirmed"].to_numpy(dtype=bool),
            "confirmed_by": confirmation_of["confirmed_by"],
            "confirmation_id": confirmation_of["confirmation_id"],
            "override_applied": tiers["override_applied"].to_numpy(dtype=bool),
            "override_limited": tiers["override_limited"].to_numpy(dtype=bool),
            "override_tier": override_of["tier"],
            "override_id": override_of["override_id"],
            "override_reviewer": override_of["reviewer"],
            "household_pid": frame["household_pid"].astype(object).to_numpy(),
            "village_code": frame["village_code"].astype(object).to_numpy(),
            "township_code": area.to_numpy(),
            "county_code": frame["county_code"].astype(object).to_numpy(),
            "run_id": uuid.uuid4().hex[:16],
            "scored_at": pd.Timestamp(stamp),
        }
    )
    out["model_version"] = out["model_version"].astype("Int64")
    for column in ("confirmation_id", "override_id"):
        out[column] = out[column].astype("Int64")
    out.attrs["run"] = {
        **summarise(out),
        "reviews": {
            "overrides_in_force": 0 if given_overrides is None else len(given_overrides),
            "overrides_not_scored": _unmatched(given_overrides, ids),
            "confirmations_given": 0 if given_confirmations is None else len(given_confirmations),
            "confirmations_not_scored": _unmatched(given_confirmations, ids),
        },
        "explained": explained,
        "guards": {
            "source_age_days": {},
            "max_staleness_days": policy.input_guards.max_staleness_days,
            "missing_rate_rise_max": max(rises.values()) if rises else None,
            "score_spread": None if math.isnan(spread) else round(spread, 6),
        },
        "areas_inferred": int(frame["township_code"].isna().sum()),
        "seconds": round(time.perf_counter() - started, 2),
    }
    return out


def _review_table(
    table: pd.DataFrame | None, required: Sequence[str], id_column: str, what: str
) -> pd.DataFrame | None:
    """A checked copy of reviewers' overrides or confirmations (child ids as text)."""
    if table is None:
        return None
    missing = [c for c in required if c not in table.columns]
    if missing:
        raise PolicyError(f"{what} lack column(s): {', '.join(missing)}")
    out = table.reset_index(drop=True).copy()
    out["child_id"] = out["child_id"].astype(str)
    if out["child_id"].duplicated().any():
        raise PolicyError(f"{what} list a child more than once")
    if id_column not in out.columns:
        out[id_column] = pd.NA
    out[id_column] = out[id_column].astype("Int64")
    return out


def _by_child(table: pd.DataFrame | None, ids: pd.Series, columns: Sequence[str]) -> dict[str, Any]:
    """``columns`` of ``table`` aligned to the run's children (missing: ``None``)."""
    if table is None:
        return {c: np.full(len(ids), None, dtype=object) for c in columns}
    aligned = table.set_index("child_id").reindex(pd.Index(ids))
    return {
        c: aligned[c].astype(object).where(aligned[c].notna(), None).to_numpy() for c in columns
    }


def _unmatched(table: pd.DataFrame | None, ids: pd.Series) -> int:
    return 0 if table is None else int((~table["child_id"].isin(ids)).sum())


def _previous_state(previous: pd.DataFrame, confirmations: pd.DataFrame | None) -> pd.DataFrame:
    state = pd.DataFrame(
        {"child_id": previous["child_id"].astype(str).to_numpy(), "tier": previous["tier"]}
    )
    for column in ("consecutive_below", "hard_rule_t1"):
        if column in previous.columns:
            state[column] = previous[column].to_numpy()
    if confirmations is not None:
        # A confirmation is part of the state the previous run left: it confirms the fall
        # that run held (a child not scored then has no fall to confirm).
        roles = confirmations.set_index("child_id")["confirmed_by"]
        state["confirmed_by"] = state["child_id"].map(roles).astype(object)
    return state


def summarise(scores: pd.DataFrame) -> dict[str, Any]:
    """The ``shouhu models score --json`` object for a run (cli.md), with extra fields.

    Parameters
    ----------
    scores : DataFrame
        A run from :func:`score`.

    Returns
    -------
    dict
        ``as_of``, ``children``, ``tiers`` (count per T1-T4), ``hard_rule_hits``,
        ``model_version``, ``policy_version``, then ``model_name``, ``model_tiers_missing``,
        ``borderline``, ``tier_mix`` (shares), ``feature_fingerprint``, ``run_id``, and the
        counts of the people's part: ``held_by_hysteresis``, ``awaiting_confirmation``,
        ``falls_confirmed``, ``overrides_applied`` and ``overrides_limited``.
    """
    tiers = scores["tier"].value_counts()
    counts = {t: int(tiers.get(t, 0)) for t in ("T1", "T2", "T3", "T4")}
    n = len(scores)
    hard = scores["rules_fired"].map(lambda rules: any(str(r).startswith("hard:") for r in rules))
    version = scores["model_version"].dropna()
    model_available = bool(scores["model_available"].any()) if n else False
    as_of = scores["as_of"].iloc[0] if n else None
    return {
        "as_of": None if as_of is None else pd.Timestamp(as_of).date().isoformat(),
        "children": n,
        "tiers": counts,
        "hard_rule_hits": int(hard.sum()),
        "model_version": int(version.iloc[0]) if len(version) else None,
        "policy_version": scores["policy_version"].iloc[0] if n else None,
        "model_name": scores["model_name"].dropna().iloc[0] if len(version) else None,
        "model_tiers_missing": not model_available,
        "borderline": int(scores["borderline"].sum()),
        "tier_mix": {t: round(c / n, 4) if n else 0.0 for t, c in counts.items()},
        "feature_fingerprint": scores["feature_fingerprint"].iloc[0] if n else None,
        "run_id": scores["run_id"].iloc[0] if n else None,
        "held_by_hysteresis": _count(scores, "held_by_hysteresis"),
        "awaiting_confirmation": _count(scores, "awaiting_confirmation"),
        "falls_confirmed": _count(scores, "fall_confirmed"),
        "overrides_applied": _count(scores, "override_applied"),
        "overrides_limited": _count(scores, "override_limited"),
    }


def _count(scores: pd.DataFrame, column: str) -> int:
    """Rows flagged in ``column`` (0 when a run from before the column existed lacks it)."""
    if column not in scores.columns:
        return 0
    return int(scores[column].fillna(False).astype(bool).sum())


def to_arrow(scores: pd.DataFrame) -> pa.Table:
    """A run as an Arrow table with :data:`SCORE_SCHEMA` (what Parquet and DuckDB store).

    Parameters
    ----------
    scores : DataFrame
        A run from :func:`score`.

    Returns
    -------
    pyarrow.Table
        Exactly the schema's columns and types.
    """
    columns = [f.name for f in SCORE_SCHEMA]
    frame = scores[columns].copy()
    for column in ("model_version", "confirmation_id", "override_id"):
        frame[column] = frame[column].astype("object").where(frame[column].notna(), None)
    return pa.Table.from_pandas(frame, schema=SCORE_SCHEMA, preserve_index=False)


# --------------------------------------------------------------------------------------------
# Persistence
# --------------------------------------------------------------------------------------------


class ScoreStore:
    """Every scoring run, in a DuckDB file of its own, plus a Parquet file per run.

    Tables: ``scores`` (one row per child and run, :data:`SCORE_SCHEMA`) and ``scoring_runs``
    (one row per run: date, counts, provenance, the Parquet path). Runs are only appended; a
    date scored twice keeps both runs, and the newest run of a date is the one in force.

    Parameters
    ----------
    path : Path
        The DuckDB file (``$SHOUHU_HOME/scores.duckdb``).
    folder : Path
        Folder of the Parquet files (``$SHOUHU_HOME/scores``).
    """

    def __init__(self, path: Path, folder: Path) -> None:
        self.path = Path(path)
        self.folder = Path(folder)

    def _connect(self, read_only: bool = False) -> duckdb.DuckDBPyConnection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        return duckdb.connect(str(self.path), read_only=read_only)

    def previous_run(self, as_of: date) -> RunRef | None:
        """The run whose tier state the scoring of ``as_of`` continues from.

        It is the newest run of the latest date before ``as_of`` (what :meth:`previous`
        reads); the confirmations that count for ``as_of`` are those made after it ran.

        Parameters
        ----------
        as_of : date
            The date about to be scored.

        Returns
        -------
        RunRef or None
            ``None`` when no earlier date was scored.
        """
        if not self.path.is_file():
            return None
        con = self._connect(read_only=True)
        try:
            return _previous_run(con, as_of)
        finally:
            con.close()

    def previous(self, as_of: date) -> pd.DataFrame | None:
        """The tier state of the newest run of the latest date before ``as_of``.

        Parameters
        ----------
        as_of : date
            The date about to be scored.

        Returns
        -------
        DataFrame or None
            ``child_id``, ``tier``, ``consecutive_below``, ``hard_rule_t1``; ``None`` when no
            earlier date was scored.
        """
        if not self.path.is_file():
            return None
        con = self._connect(read_only=True)
        try:
            run = _previous_run(con, as_of)
            if run is None:
                return None
            table = con.sql(
                "SELECT child_id, tier, consecutive_below, hard_rule_t1 FROM scores "
                "WHERE run_id = $run ORDER BY child_id",
                params={"run": run.run_id},
            ).to_arrow_table()
        finally:
            con.close()
        if table is None:
            return None
        previous: pd.DataFrame = table.to_pandas()
        return previous

    def save(self, scores: pd.DataFrame, *, out: Path | None = None) -> Path:
        """Write a run: the Parquet file first (atomically), then both DuckDB tables.

        Parameters
        ----------
        scores : DataFrame
            A run from :func:`score`.
        out : Path, optional
            The Parquet file; ``<folder>/scores_<as_of>_<run_id>.parquet`` by default.

        Returns
        -------
        Path
            The Parquet file written.
        """
        table = to_arrow(scores)
        summary = summarise(scores)
        if out is None:
            self.folder.mkdir(parents=True, exist_ok=True)
            out = self.folder / f"scores_{summary['as_of']}_{summary['run_id']}.parquet"
        out = Path(out)
        out.parent.mkdir(parents=True, exist_ok=True)
        partial = out.with_name(out.name + ".partial")
        pq.write_table(table, partial)
        partial.replace(out)
        run = pa.table(
            {
                "run_id": [summary["run_id"]],
                "as_of": pa.array([date.fromisoformat(summary["as_of"])], pa.date32()),
                "scored_at": pa.array([scores["scored_at"].iloc[0]], pa.timestamp("us", tz="UTC")),
                "children": [summary["children"]],
                "tiers": [json.dumps(summary["tiers"])],
                "hard_rule_hits": [summary["hard_rule_hits"]],
                "model_name": pa.array([summary["model_name"]], pa.string()),
                "model_version": pa.array([summary["model_version"]], pa.int64()),
                "model_tiers_missing": [summary["model_tiers_missing"]],
                "policy_version": [summary["policy_version"]],
                "feature_fingerprint": [summary["feature_fingerprint"]],
                "parquet": [str(out)],
            }
        )
        con = self._connect()
        try:
            con.register("_scores_in", table)
            con.register("_run_in", run)
            con.execute("BEGIN TRANSACTION")
            con.execute("CREATE TABLE IF NOT EXISTS scores AS SELECT * FROM _scores_in LIMIT 0")
            con.execute("CREATE TABLE IF NOT EXISTS scoring_runs AS SELECT * FROM _run_in LIMIT 0")
            # A store written before a column existed gets it (empty for the old runs), so
            # every run stays in one table.
            _add_missing_columns(con, "scores", "_scores_in")
            con.execute("INSERT INTO scores BY NAME SELECT * FROM _scores_in")
            con.execute("INSERT INTO scoring_runs BY NAME SELECT * FROM _run_in")
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
        finally:
            con.close()
        return out

    def runs(self) -> pd.DataFrame:
        """Every stored run, oldest first (empty without runs).

        Returns
        -------
        DataFrame
            One row per run.
        """
        if not self.path.is_file():
            return pd.DataFrame()
        con = self._connect(read_only=True)
        try:
            if not _has_table(con, "scoring_runs"):
                return pd.DataFrame()
            table = con.sql("SELECT * FROM scoring_runs ORDER BY as_of, scored_at").to_arrow_table()
        finally:
            con.close()
        runs: pd.DataFrame = pd.DataFrame() if table is None else table.to_pandas()
        return runs


def _previous_run(con: duckdb.DuckDBPyConnection, as_of: date) -> RunRef | None:
    if not _has_table(con, "scoring_runs"):
        return None
    # Microseconds since the epoch: DuckDB's own fetch of a timestamp with time zone needs pytz.
    rows = con.execute(
        "SELECT run_id, as_of, epoch_us(scored_at) FROM scoring_runs WHERE as_of < ? "
        "ORDER BY as_of DESC, scored_at DESC LIMIT 1",
        [as_of],
    ).fetchall()
    if not rows:
        return None
    run_id, day, micros = rows[0]
    return RunRef(
        str(run_id), day, datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=int(micros))
    )


def _add_missing_columns(con: duckdb.DuckDBPyConnection, table: str, source: str) -> None:
    have = {
        str(r[0])
        for r in con.execute(
            "SELECT column_name FROM duckdb_columns() "
            "WHERE table_name = ? AND schema_name = 'main'",
            [table],
        ).fetchall()
    }
    for name, kind in con.execute(
        f"SELECT column_name, column_type FROM (DESCRIBE {source})"
    ).fetchall():
        if name not in have:
            con.execute(f'ALTER TABLE {table} ADD COLUMN "{name}" {kind}')


def _has_table(con: duckdb.DuckDBPyConnection, name: str) -> bool:
    rows = con.execute(
        "SELECT COUNT(*) FROM duckdb_tables() WHERE table_name = ?", [name]
    ).fetchall()
    return bool(rows[0][0])


__all__ = [
    "CONFIRMATION_COLUMNS",
    "DOMAIN_COLUMNS",
    "INPUT_PROFILE_KEY",
    "OVERRIDE_COLUMNS",
    "REASON_TYPE",
    "SCORE_SCHEMA",
    "ModelRef",
    "RunRef",
    "ScoreStore",
    "check_freshness",
    "check_missing_rates",
    "check_spread",
    "missing_rates",
    "reasons_for",
    "reference_missing_rates",
    "score",
    "score_frame",
    "summarise",
    "to_arrow",
]
