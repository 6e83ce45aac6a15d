"""The tier policy: a versioned data file a county edits, loaded into typed, validated objects.

The policy says how a child's risk tier is decided (``tier-policy.md``): which situations force
the top tier whatever any model says (*hard rules*), which set a minimum tier (*floor rules*), how
many children each township's staff can visit (capacity, which sets the model's thresholds),
how a tier may fall (hysteresis), and the numbers monitoring and promotion check against. Every
number and name lives in the YAML file (``models/policies/default.yaml`` by default); this module
holds none of them, only the schema, the checks and the evaluation of rule conditions.

Rule conditions are a small declarative language over feature columns::

    {feature: age_years, op: lt, value: 16}
    {all: [..., ...]}   {any: [..., ...]}   {not: {...}}

A missing value never satisfies a comparison. Conditions use three-valued (Kleene) logic, so
``not`` of an unknown comparison stays unknown, and a rule fires only when its condition is
known to be true. Use ``is_null`` to act on missing data on purpose.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
from collections.abc import Callable, Collection, Hashable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from enum import StrEnum
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal, TypeAlias

import numpy as np
import pandas as pd
import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    Tag,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from shouhu.errors import PolicyError

logger = logging.getLogger(__name__)

#: Where the default policy ships inside the package (included in the wheel with the package).
DEFAULT_POLICY_RESOURCE = "policies/default.yaml"

_SNAKE = r"^[a-z][a-z0-9_]*$"
_AREA_CODE = r"^[0-9]+$"


class Tier(StrEnum):
    """A risk tier. ``T1`` is the most severe; ``level`` orders them (1 = most severe)."""

    T1 = "T1"
    T2 = "T2"
    T3 = "T3"
    T4 = "T4"

    @property
    def level(self) -> int:
        """1 for T1 (most severe) … 4 for T4 (routine care)."""
        return int(self.value[1])

    @classmethod
    def from_level(cls, level: int) -> Tier:
        """The tier of ``level`` (1-4)."""
        return cls(f"T{level}")


def most_severe(*tiers: Tier | None) -> Tier | None:
    """The most severe of ``tiers`` (``None`` entries ignored; ``None`` if all are ``None``)."""
    present = [t for t in tiers if t is not None]
    return min(present, key=lambda t: t.level) if present else None


class Role(StrEnum):
    """Who may confirm a tier change. A supervisor may do whatever a caseworker may."""

    CASEWORKER = "caseworker"
    SUPERVISOR = "supervisor"

    @property
    def rank(self) -> int:
        """0 for a caseworker, 1 for a supervisor."""
        return 0 if self is Role.CASEWORKER else 1

    def may_act_as(self, required: Role) -> bool:
        """Whether this role carries the authority ``required`` asks for."""
        return self.rank >= required.rank


# ---------------------------------------------------------------------------------------------
# Schema building blocks


class _Frozen(BaseModel):
    """Base of every policy object: unknown keys are errors, objects are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)


NonEmpty = Annotated[StrictStr, Field(min_length=1)]
SnakeName = Annotated[StrictStr, Field(pattern=_SNAKE)]
Share = Annotated[StrictFloat, Field(ge=0.0, le=1.0)]
Count = Annotated[StrictInt, Field(ge=0)]
Positive = Annotated[StrictInt, Field(gt=0)]


class Text(_Frozen):
    """A label in Chinese and English."""

    zh: NonEmpty
    en: NonEmpty


class Period(_Frozen):
    """A span of time: ``{every: 2, unit: week}`` or, for deadlines, ``{every: 24, unit: hour}``."""

    every: Positive
    unit: Literal["hour", "day", "week", "month", "quarter", "year"]


class Colour(_Frozen):
    """The colour a tier is shown in."""

    zh: NonEmpty
    en: NonEmpty
    hex: Annotated[StrictStr, Field(pattern=r"^#[0-9a-fA-F]{6}$")]


class Response(_Frozen):
    """What the product tracks for a child in a tier (deadlines and cadences)."""

    summary: Text
    report_to_police_at_once: StrictBool = False
    first_visit_within: Period | None = None
    case_plan_within: Period | None = None
    visit_every: Period | None = None
    contact_every: Period | None = None
    phone_check_every: Period | None = None
    attendance_check_every: Period | None = None
    rescore_every: Period
    file_update_every: Period | None = None
    closed_by: Role


class TierSpec(_Frozen):
    """One tier's names, colour and response."""

    id: Tier
    zh: NonEmpty
    en: NonEmpty
    colour: Colour
    response: Response


# ---------------------------------------------------------------------------------------------
# Conditions

Op = Literal[
    "eq", "ne", "in", "not_in", "gt", "ge", "lt", "le", "is_true", "is_false", "is_null", "not_null"
]
Scalar: TypeAlias = StrictBool | StrictInt | StrictFloat | StrictStr
_UNARY_OPS = frozenset({"is_true", "is_false", "is_null", "not_null"})
_ORDER_OPS = frozenset({"gt", "ge", "lt", "le"})
_SET_OPS = frozenset({"in", "not_in"})


class Comparison(_Frozen):
    """One test of one feature column, e.g. ``{feature: age_years, op: lt, value: 16}``."""

    feature: SnakeName
    op: Op
    value: Scalar | Annotated[list[Scalar], Field(min_length=1)] | None = Field(
        default=None, validate_default=True
    )

    @field_validator("value")
    @classmethod
    def _value_fits_op(cls, value: object, info: ValidationInfo) -> object:
        op = info.data.get("op")
        if op is None:  # the op itself failed validation; that error is reported instead
            return value
        if op in _UNARY_OPS:
            if value is not None:
                raise ValueError(f"op {op!r} takes no value")
        elif op in _SET_OPS:
            if not isinstance(value, list):
                raise ValueError(f"op {op!r} needs a list of values")
        elif op in _ORDER_OPS:
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ValueError(f"op {op!r} needs a number, got {value!r}")
        elif value is None or isinstance(value, list):
            raise ValueError(f"op {op!r} needs a single value")
        return value


class AllOf(_Frozen):
    """True when every sub-condition is true."""

    all_: list[Condition] = Field(alias="all", min_length=1)


class AnyOf(_Frozen):
    """True when at least one sub-condition is true."""

    any_: list[Condition] = Field(alias="any", min_length=1)


class NotOf(_Frozen):
    """True when the sub-condition is false (unknown stays unknown)."""

    not_: Condition = Field(alias="not")


# The tags name the branch in pydantic's error locations; they are stripped from the field
# paths shown to people, so they must never collide with a field name.
_CONDITION_TAGS = {"Comparison", "AllOf", "AnyOf", "NotOf"}


def _condition_kind(value: object) -> str | None:
    if isinstance(value, BaseModel):
        return type(value).__name__
    if not isinstance(value, Mapping):
        return None
    for key, tag in (("all", "AllOf"), ("any", "AnyOf"), ("not", "NotOf")):
        if key in value:
            return tag
    return "Comparison" if "feature" in value or "op" in value else None


Condition: TypeAlias = Annotated[
    Annotated[Comparison, Tag("Comparison")]
    | Annotated[AllOf, Tag("AllOf")]
    | Annotated[AnyOf, Tag("AnyOf")]
    | Annotated[NotOf, Tag("NotOf")],
    Discriminator(
        _condition_kind,
        custom_error_type="condition_kind",
        custom_error_message=(
            "a condition is {feature, op[, value]}, {all: [...]}, {any: [...]} or {not: ...}"
        ),
    ),
]
AllOf.model_rebuild()
AnyOf.model_rebuild()
NotOf.model_rebuild()
_CONDITION_ADAPTER: TypeAdapter[Condition] = TypeAdapter(Condition)


def parse_condition(data: object) -> Condition:
    """Validate a condition written as plain data (as in the YAML file).

    Raises
    ------
    PolicyError
        If ``data`` is not a valid condition; the message names the field path.
    """
    try:
        return _CONDITION_ADAPTER.validate_python(data)
    except ValidationError as exc:
        raise PolicyError(_format_errors("condition", exc)) from None


def condition_features(condition: Condition) -> frozenset[str]:
    """Every feature name a condition reads."""
    if isinstance(condition, Comparison):
        return frozenset({condition.feature})
    if isinstance(condition, NotOf):
        return condition_features(condition.not_)
    parts = condition.all_ if isinstance(condition, AllOf) else condition.any_
    return frozenset().union(*(condition_features(c) for c in parts))


# ---------------------------------------------------------------------------------------------
# Rules


class Rule(_Frozen):
    """A named situation, described in Chinese and English, detected by a condition."""

    name: SnakeName
    zh: NonEmpty
    en: NonEmpty
    domain: SnakeName
    when: Condition
    source: StrictStr | None = None


class HardRule(Rule):
    """A statutory mandatory-report situation: forces T1 whatever any model says."""


class FloorRule(Rule):
    """A situation that keeps the tier at or above ``tier``."""

    tier: Tier

    @field_validator("tier")
    @classmethod
    def _floor_above_routine(cls, tier: Tier) -> Tier:
        if tier is Tier.T4:
            raise ValueError("a floor of T4 changes nothing; use T1, T2 or T3")
        return tier


@dataclass(frozen=True)
class FiredRule:
    """A rule that fired for a child, with the tier it forces (hard) or guarantees (floor)."""

    kind: Literal["hard", "floor"]
    name: str
    tier: Tier

    @property
    def label(self) -> str:
        """``hard:<rule>`` or ``floor:<tier>:<rule>``, as stored in ``rules_fired``."""
        return f"hard:{self.name}" if self.kind == "hard" else f"floor:{self.tier}:{self.name}"


# ---------------------------------------------------------------------------------------------
# Capacity, thresholds, hysteresis and the numbers monitoring checks


class Slots(_Frozen):
    """How many children one township's staff can carry in the model's T2 and T3 bands."""

    t2: Count = Field(description="children visited every two weeks (T2 band)")
    t3: Count = Field(description="children in the next band (T3)")


class ShareSlots(_Frozen):
    """The T2 and T3 bands as shares of the township's registered children."""

    t2: Share
    t3: Share

    @model_validator(mode="after")
    def _fits_in_population(self) -> ShareSlots:
        if self.t2 + self.t3 > 1.0:
            raise ValueError(f"t2 + t3 = {self.t2 + self.t3:g} exceeds the whole population (1)")
        return self


class AreaCapacity(_Frozen):
    """One area's capacity: counts, or shares of its children."""

    basis: Literal["count", "share"]
    t2: Annotated[StrictInt | StrictFloat, Field(ge=0)]
    t3: Annotated[StrictInt | StrictFloat, Field(ge=0)]

    @model_validator(mode="after")
    def _numbers_fit_basis(self) -> AreaCapacity:
        if self.basis == "count":
            for band in ("t2", "t3"):
                if not isinstance(getattr(self, band), int):
                    raise ValueError(f"{band}: a count must be a whole number")
        elif self.t2 > 1 or self.t3 > 1 or self.t2 + self.t3 > 1:
            raise ValueError("shares t2, t3 must lie in [0, 1] and sum to at most 1")
        return self

    def slots(self, children: int) -> tuple[int, int]:
        """The (T2, T3) band sizes for an area with ``children`` registered children."""
        if self.basis == "count":
            return int(self.t2), int(self.t3)
        # Round away float noise (0.29 * 100 = 28.999…) before flooring, so a share never
        # rounds a whole child up beyond what the staff can visit.
        return (
            math.floor(round(self.t2 * children, 9)),
            math.floor(round(self.t3 * children, 9)),
        )


class Capacity(_Frozen):
    """Visit capacity per area, which sizes the model's T2 and T3 bands."""

    area_level: Literal["township"] = "township"
    area_column: SnakeName = Field(description="feature column holding the area code")
    basis: Literal["count", "share"]
    per_area: Slots | None = Field(default=None, description="default counts (basis: count)")
    share: ShareSlots | None = Field(
        default=None, description="default shares of an area's children (basis: share)"
    )
    overrides: dict[Annotated[str, Field(pattern=_AREA_CODE)], AreaCapacity] = Field(
        default_factory=dict
    )

    @model_validator(mode="after")
    def _default_for_basis(self) -> Capacity:
        if self.basis == "count" and self.per_area is None:
            raise ValueError("basis 'count' needs per_area: {t2: <count>, t3: <count>}")
        if self.basis == "share" and self.share is None:
            raise ValueError("basis 'share' needs share: {t2: <share>, t3: <share>}")
        return self

    def for_area(self, area_code: str) -> AreaCapacity:
        """The capacity of ``area_code``: its override if the file has one, else the default."""
        override = self.overrides.get(area_code)
        if override is not None:
            return override
        if self.basis == "count":
            assert self.per_area is not None  # guaranteed by _default_for_basis
            return AreaCapacity(basis="count", t2=self.per_area.t2, t3=self.per_area.t3)
        assert self.share is not None
        return AreaCapacity(basis="share", t2=self.share.t2, t3=self.share.t3)


class Thresholds(_Frozen):
    """How the model's score places a child once no rule forces T1."""

    mode: Literal["capacity"]
    score: SnakeName = Field(description="the calibrated probability column, e.g. p_any")
    interval: tuple[SnakeName, SnakeName] | None = Field(
        default=None,
        description="lower and upper bound columns; an interval straddling a threshold is "
        "borderline",
    )


class Hysteresis(_Frozen):
    """How a tier may fall: rises are immediate, falls wait and need a person's confirmation."""

    rise: Literal["immediate"] = "immediate"
    fall_after_consecutive_below: Positive
    fall_confirmed_by: Role
    hard_rule_t1_closed_by: Role
    hard_rule_t1_needs_consecutive_below: StrictBool
    count_scorings_without_model: StrictBool = Field(
        description="whether a scoring with no model score counts towards a fall"
    )


class Range(_Frozen):
    """A closed interval ``[low, high]``."""

    low: StrictFloat | StrictInt
    high: StrictFloat | StrictInt

    @model_validator(mode="after")
    def _ordered(self) -> Range:
        if self.low > self.high:
            raise ValueError(f"low {self.low:g} is above high {self.high:g}")
        return self

    def contains(self, value: float) -> bool:
        """Whether ``low <= value <= high``."""
        return bool(self.low <= value <= self.high)


class ShareRange(Range):
    """A range of shares of the population, inside [0, 1]."""

    low: Share
    high: Share


class ExpectedMix(_Frozen):
    """The share of children expected in T1-T3; T4 is the rest."""

    t1: ShareRange
    t2: ShareRange
    t3: ShareRange

    @model_validator(mode="after")
    def _leaves_room_for_t4(self) -> ExpectedMix:
        high = self.t1.high + self.t2.high + self.t3.high
        if high > 1.0:
            raise ValueError(f"the upper bounds of t1-t3 sum to {high:g}, more than everyone")
        return self

    def range_of(self, tier: Tier) -> ShareRange:
        """The expected share range of ``tier``; T4's is what T1-T3 leave."""
        if tier is Tier.T4:
            bands = (self.t1, self.t2, self.t3)
            return ShareRange(
                low=round(1.0 - sum(b.high for b in bands), 12),
                high=round(1.0 - sum(b.low for b in bands), 12),
            )
        band: ShareRange = getattr(self, tier.value.lower())
        return band


class Promotion(_Frozen):
    """Pre-registered quality a challenger model must reach before it may become champion."""

    min_precision_at_capacity: Annotated[StrictFloat, Field(gt=0.0, le=1.0)]
    preregistered_on: date


class InputGuards(_Frozen):
    """Limits on the scoring input; crossing one stops the run or raises an alarm."""

    max_staleness_days: Positive
    max_missing_rate_jump: Annotated[StrictFloat, Field(gt=0.0, le=1.0)]
    min_score_spread: Annotated[StrictFloat, Field(ge=0.0)] = Field(
        description="minimum standard deviation of the score across one run"
    )


class Fairness(_Frozen):
    """The band a group's metric ratio to the reference group must stay in."""

    disparity_band: Range

    @field_validator("disparity_band")
    @classmethod
    def _brackets_parity(cls, band: Range) -> Range:
        if not band.low < 1.0 < band.high:
            raise ValueError(f"[{band.low:g}, {band.high:g}] must contain 1 (parity) strictly")
        if band.low <= 0:
            raise ValueError("the lower bound of a ratio band must be positive")
        return band


# ---------------------------------------------------------------------------------------------
# Monitoring thresholds: the optional `monitoring:` section, read by monitoring.drift and
# monitoring.quality (their meaning is documented in docs/monitoring.md). Optional so that a
# policy written before monitoring existed still loads; `shouhu monitoring drift` refuses to
# run without it.


class FeatureDriftLimits(_Frozen):
    """When drift of the feature frame as a whole raises the monitoring alarm."""

    drift_share: Annotated[StrictFloat, Field(gt=0.0, le=1.0)] = Field(
        description="share of drifted features at which the frame counts as drifted"
    )


class PredictionDriftLimits(_Frozen):
    """When drift of the calibrated risk between the two dates raises the alarm."""

    alarm: StrictBool
    threshold: Annotated[StrictFloat, Field(gt=0.0)] = Field(
        description="normed Wasserstein distance of p_any at which it drifted"
    )


class TierShiftLimits(_Frozen):
    """How far the tier mix may move between the two dates."""

    max_share_change: Share = Field(description="largest change of one tier's share")
    max_area_share_change: Share = Field(description="the same within one area")
    alarm_outside_expected_mix: StrictBool = Field(
        description="whether a current mix outside expected_mix raises the alarm"
    )


class QualityLimits(_Frozen):
    """Data-quality limits, overall and per area."""

    max_missing_rate_jump: Annotated[StrictFloat, Field(gt=0.0, le=1.0)]
    min_new_category_share: Share = Field(description="a new category this common is reported")
    min_vanished_category_share: Share = Field(description="a vanished one this common, too")
    max_unmapped_area_share: Share = Field(description="children whose village has no township")


class VolumeLimits(_Frozen):
    """How much recording may fall or surge in an area against the reference."""

    min_visit_ratio: Share = Field(description="visits per child, current / reference")
    min_recent_record_ratio: Share = Field(description="children with a record in 30 days")
    max_entrant_ratio: Annotated[StrictFloat | StrictInt, Field(ge=1)] = Field(
        description="new registrations in 90 days, current / reference"
    )
    min_entrant_excess: Share = Field(description="... and at least this much more (share)")
    max_population_change: Share = Field(description="registered children, relative change")
    max_school_days_without_report: Positive = Field(
        description="school days since the newest week a school's absence reports cover"
    )


class MonitoringLimits(_Frozen):
    """Thresholds of the drift and data-quality report (`shouhu monitoring drift`)."""

    reference_months_back: Positive = Field(description="default reference: a year earlier")
    recency_horizon_days: Positive = Field(description="days-since features compared up to this")
    min_area_children: Count = Field(description="smaller areas are shown but never alarm")
    feature_drift: FeatureDriftLimits
    prediction_drift: PredictionDriftLimits
    tier_shift: TierShiftLimits
    quality: QualityLimits
    volume: VolumeLimits


# ---------------------------------------------------------------------------------------------
# The policy


class TierPolicy(_Frozen):
    """A complete, validated tier policy. Build it with :func:`load_policy`.

    Attributes
    ----------
    version : str
        The version people cite; every stored score records it beside :meth:`fingerprint`.
    hard_rules, floor_rules : list
        Rules in the order they are shown.
    """

    version: NonEmpty
    title: Text
    domains: dict[SnakeName, Text] = Field(min_length=1)
    tiers: list[TierSpec]
    hard_rules: list[HardRule]
    floor_rules: list[FloorRule]
    capacity: Capacity
    thresholds: Thresholds
    hysteresis: Hysteresis
    expected_mix: ExpectedMix
    promotion: Promotion
    input_guards: InputGuards
    fairness: Fairness
    monitoring: MonitoringLimits | None = None

    @model_validator(mode="after")
    def _consistent(self) -> TierPolicy:
        problems = list(self._problems())
        if problems:
            raise ValueError("\n".join(f"{path}: {message}" for path, message in problems))
        return self

    def _problems(self) -> Iterator[tuple[str, str]]:
        ids = [t.id for t in self.tiers]
        if ids != list(Tier):
            got = ", ".join(str(i) for i in ids)
            yield "tiers", f"must list {', '.join(Tier)} once each, in order; got {got}"
        seen: dict[str, str] = {}
        for kind, rules in (("hard_rules", self.hard_rules), ("floor_rules", self.floor_rules)):
            for i, rule in enumerate(rules):
                path = f"{kind}[{i}]"
                if rule.name in seen:
                    yield (
                        f"{path}.name",
                        f"duplicate rule name {rule.name!r} (also {seen[rule.name]})",
                    )
                seen.setdefault(rule.name, path)
                if rule.domain not in self.domains:
                    yield (
                        f"{path}.domain",
                        f"{rule.domain!r} is not one of the domains {sorted(self.domains)}",
                    )

    # -- derived views ---------------------------------------------------------------------

    @property
    def rules(self) -> tuple[HardRule | FloorRule, ...]:
        """Hard rules, then floor rules, in file order."""
        return (*self.hard_rules, *self.floor_rules)

    def tier(self, tier: Tier) -> TierSpec:
        """The names, colour and response of ``tier``."""
        return self.tiers[tier.level - 1]

    def feature_names(self) -> frozenset[str]:
        """Every feature a rule condition reads."""
        return frozenset().union(*(condition_features(r.when) for r in self.rules))

    def fired(self, rule: HardRule | FloorRule) -> FiredRule:
        """The :class:`FiredRule` recorded when ``rule`` fires."""
        if isinstance(rule, FloorRule):
            return FiredRule("floor", rule.name, rule.tier)
        return FiredRule("hard", rule.name, Tier.T1)

    def rule_labels(self) -> tuple[str, ...]:
        """The ``rules_fired`` label of every rule, in policy order."""
        return tuple(self.fired(r).label for r in self.rules)

    def fingerprint(self) -> str:
        """A SHA-256 of the canonical content, so an edit without a version bump still shows."""
        canonical = json.dumps(
            self.model_dump(mode="json", by_alias=True),
            sort_keys=True,
            ensure_ascii=False,
            separators=(",", ":"),
        )
        return "sha256:" + hashlib.sha256(canonical.encode("utf-8")).hexdigest()

    def check_features(self, known: Collection[str]) -> None:
        """Fail unless every feature the rules read is in ``known`` (the feature registry).

        Raises
        ------
        PolicyError
            Naming each rule and the unknown feature it reads.
        """
        known_set = set(known)
        problems = [
            f"{kind}[{i}] ({rule.name}).when: unknown feature {name!r}"
            for kind, rules in (("hard_rules", self.hard_rules), ("floor_rules", self.floor_rules))
            for i, rule in enumerate(rules)
            for name in sorted(condition_features(rule.when) - known_set)
        ]
        if problems:
            raise PolicyError(f"policy {self.version}: " + "; ".join(problems))


# ---------------------------------------------------------------------------------------------
# Loading


class _UniqueKeyLoader(yaml.SafeLoader):
    """A safe YAML loader that refuses a key given twice (PyYAML keeps the last silently)."""


def _construct_unique_mapping(loader: yaml.SafeLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    loader.flatten_mapping(node)
    mapping: dict[Any, Any] = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        if key in mapping:
            raise yaml.constructor.ConstructorError(
                None, None, f"key {key!r} appears twice", key_node.start_mark
            )
        mapping[key] = loader.construct_object(value_node, deep=True)
    return mapping


_UniqueKeyLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_unique_mapping
)


def _format_loc(loc: Sequence[int | str]) -> str:
    path = ""
    for item in loc:
        if isinstance(item, int):
            path += f"[{item}]"
        elif item not in _CONDITION_TAGS:
            path += f".{item}" if path else str(item)
    return path


def _format_errors(source: str, exc: ValidationError) -> str:
    lines = []
    for err in exc.errors(include_url=False):
        path = _format_loc(err["loc"])
        kind = err["type"]
        ctx = err.get("ctx") or {}
        if kind == "value_error":
            message = str(ctx.get("error", err["msg"]))
        elif kind in ("literal_error", "enum"):
            message = f"{err['input']!r} is not one of {ctx.get('expected', '')}"
        elif kind == "extra_forbidden":
            message = "unknown field"
        elif kind == "missing":
            message = "required field is missing"
        else:
            message = f"{err['msg']} (got {err['input']!r})"
        # A consistency check reports several "path: message" lines itself.
        for line in message.splitlines():
            lines.append(f"{source}: {path}: {line}" if path else f"{source}: {line}")
    return "\n".join(lines)


def _read_default() -> tuple[str, str]:
    resource = resources.files("models").joinpath(DEFAULT_POLICY_RESOURCE)
    return resource.name, resource.read_text(encoding="utf-8")


def load_policy(
    path: str | Path | None = None, *, known_features: Collection[str] | None = None
) -> TierPolicy:
    """Load and validate a tier-policy YAML file.

    Parameters
    ----------
    path : str or Path, optional
        The policy file; the default policy shipped with the package when ``None``.
    known_features : collection of str, optional
        Feature names of the registry; when given, every feature a rule reads must be one.

    Returns
    -------
    TierPolicy
        The validated policy.

    Raises
    ------
    PolicyError
        If the file is missing, is not YAML, or breaks the schema or a consistency check. The
        message names the file and the field path, e.g.
        ``default.yaml: hard_rules[2].when.op: 'equals' is not one of 'eq', 'ne', …``.
    """
    if path is None:
        name, text = _read_default()
    else:
        file = Path(path)
        name = file.name
        try:
            text = file.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise PolicyError(f"{file}: policy file not found") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise PolicyError(f"{file}: cannot read policy file ({exc})") from None
    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader)  # a SafeLoader subclass
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = " ".join(p for p in (exc.context, exc.problem) if p)
        raise PolicyError(f"{name}: {where}not valid YAML: {problem}") from None
    except yaml.YAMLError as exc:
        raise PolicyError(f"{name}: not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise PolicyError(
            f"{name}: the policy must be a mapping of fields, got {type(data).__name__}"
        )
    try:
        policy = TierPolicy.model_validate(data)
    except ValidationError as exc:
        raise PolicyError(_format_errors(name, exc)) from None
    if known_features is not None:
        policy.check_features(known_features)
    logger.debug("policy loaded", extra={"policy_version": policy.version, "file": name})
    return policy


# ---------------------------------------------------------------------------------------------
# Evaluating conditions


def _is_missing(value: object) -> bool:
    if value is None or value is pd.NA or value is pd.NaT:
        return True
    return isinstance(value, float | np.floating) and math.isnan(value)


def _plain(value: object) -> object:
    # numpy scalars (np.int64, np.bool_) are not int/bool instances; compare them as Python.
    return value.item() if isinstance(value, np.generic) else value


def _value_kind(value: object) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "text"
    return "other"


def _series_kind(series: pd.Series) -> str:
    dtype = series.dtype
    if isinstance(dtype, pd.CategoricalDtype):
        inferred = pd.api.types.infer_dtype(dtype.categories, skipna=True)
    elif pd.api.types.is_bool_dtype(dtype):
        return "bool"
    elif pd.api.types.is_numeric_dtype(dtype):
        return "number"
    elif pd.api.types.is_datetime64_any_dtype(dtype):
        return "other"
    else:
        inferred = pd.api.types.infer_dtype(series, skipna=True)
    return {
        "string": "text",
        "boolean": "bool",
        "integer": "number",
        "floating": "number",
        "mixed-integer-float": "number",
        "decimal": "number",
        "empty": "empty",
    }.get(inferred, "other")


def _check_kinds(comparison: Comparison, data_kind: str) -> None:
    """Refuse comparisons that could only ever be false because the types differ."""
    op = comparison.op
    if data_kind == "empty" or op in ("is_null", "not_null"):
        return
    if op in ("is_true", "is_false"):
        allowed = {"bool", "number"}
        wanted = "a yes/no"
    elif op in _ORDER_OPS:
        allowed = {"number"}
        wanted = "a numeric"
    else:
        values = comparison.value if isinstance(comparison.value, list) else [comparison.value]
        kinds = {_value_kind(v) for v in values}
        allowed = {"number", "bool"} if kinds <= {"number", "bool"} else kinds
        wanted = "a " + "/".join(sorted(kinds))
    if data_kind not in allowed:
        raise PolicyError(
            f"condition {{feature: {comparison.feature}, op: {op}}} needs {wanted} feature, "
            f"but the data holds {data_kind} values"
        )


def _compare_record(comparison: Comparison, raw: object) -> bool | None:
    if _is_missing(raw):
        return (
            True if comparison.op == "is_null" else (False if comparison.op == "not_null" else None)
        )
    value = _plain(raw)
    _check_kinds(comparison, _value_kind(value))
    op, target = comparison.op, comparison.value
    match op:
        case "is_null":
            return False
        case "not_null":
            return True
        case "is_true":
            return bool(value == True)  # noqa: E712 - 1 and 1.0 count as true, like pandas
        case "is_false":
            return bool(value == False)  # noqa: E712
        case "eq":
            return bool(value == target)
        case "ne":
            return bool(value != target)
        case "in":
            assert isinstance(target, list)
            return value in target
        case "not_in":
            assert isinstance(target, list)
            return value not in target
    compare: Callable[[Any, Any], bool] = _ORDER_FUNCS[op]
    return compare(value, target)


_ORDER_FUNCS: dict[str, Callable[[Any, Any], bool]] = {
    "gt": lambda a, b: a > b,
    "ge": lambda a, b: a >= b,
    "lt": lambda a, b: a < b,
    "le": lambda a, b: a <= b,
}


def _eval_record(condition: Condition, record: Mapping[Any, object]) -> bool | None:
    if isinstance(condition, Comparison):
        return _compare_record(condition, record[condition.feature])
    if isinstance(condition, NotOf):
        inner = _eval_record(condition.not_, record)
        return None if inner is None else not inner
    if isinstance(condition, AllOf):
        results = [_eval_record(c, record) for c in condition.all_]
        if False in results:
            return False
        return None if None in results else True
    results = [_eval_record(c, record) for c in condition.any_]
    if True in results:
        return True
    return None if None in results else False


def _require_features(features: frozenset[str], available: Collection[str], what: str) -> None:
    missing = sorted(features - set(available))
    if missing:
        raise PolicyError(f"the {what} lacks feature(s) the policy reads: {', '.join(missing)}")


def evaluate_record(condition: Condition, record: Mapping[Any, object]) -> bool:
    """Whether ``condition`` is known to be true for one child's feature record.

    Parameters
    ----------
    condition : Condition
        A parsed condition.
    record : mapping
        Feature name → value; ``None``/NaN/``pd.NA`` are missing.

    Returns
    -------
    bool
        ``True`` only when the condition is true; unknown (missing data) counts as false.

    Raises
    ------
    PolicyError
        If the record lacks a feature the condition reads, or a value's type cannot be compared.

    Examples
    --------
    >>> cond = parse_condition({"all": [{"feature": "age_years", "op": "lt", "value": 16},
    ...                                 {"feature": "lives_alone", "op": "is_true"}]})
    >>> evaluate_record(cond, {"age_years": 12, "lives_alone": True})
    True
    >>> evaluate_record(cond, {"age_years": None, "lives_alone": True})
    False
    """
    _require_features(condition_features(condition), record.keys(), "record")
    return _eval_record(condition, record) is True


def _compare_series(comparison: Comparison, series: pd.Series) -> pd.Series:
    missing = series.isna()
    op, target = comparison.op, comparison.value
    if op == "is_null":
        return missing.astype("boolean")
    if op == "not_null":
        return (~missing).astype("boolean")
    _check_kinds(comparison, _series_kind(series))
    if isinstance(series.dtype, pd.CategoricalDtype) and op in ("eq", "ne", *_SET_OPS):
        # A misspelt code would silently never match; the categories are the allowed codes.
        values = target if isinstance(target, list) else [target]
        unknown = [v for v in values if v not in set(series.dtype.categories)]
        if unknown:
            codes = ", ".join(map(str, series.dtype.categories))
            raise PolicyError(
                f"condition {{feature: {comparison.feature}, op: {op}}}: {unknown} "
                f"is not a code of the feature (codes: {codes})"
            )
    match op:
        case "is_true":
            raw = series == True  # noqa: E712 - elementwise comparison
        case "is_false":
            raw = series == False  # noqa: E712
        case "eq":
            raw = series == target
        case "ne":
            raw = series != target
        case "in":
            raw = series.isin(target)  # type: ignore[arg-type]
        case "not_in":
            raw = ~series.isin(target)  # type: ignore[arg-type]
        case _:
            # gt/ge/lt/le are also the names of pandas' comparison methods.
            raw = getattr(series, op)(target)
    result = raw.astype("boolean")
    return result.mask(missing.to_numpy(dtype=bool), pd.NA)


def _eval_frame(condition: Condition, frame: pd.DataFrame) -> pd.Series:
    # The "boolean" extension dtype implements Kleene logic for &, | and ~.
    if isinstance(condition, Comparison):
        return _compare_series(condition, frame[condition.feature])
    if isinstance(condition, NotOf):
        return ~_eval_frame(condition.not_, frame)
    parts = [
        _eval_frame(c, frame)
        for c in (condition.all_ if isinstance(condition, AllOf) else condition.any_)
    ]
    result = parts[0]
    for part in parts[1:]:
        result = (result & part) if isinstance(condition, AllOf) else (result | part)
    return result


def evaluate(condition: Condition, frame: pd.DataFrame) -> pd.Series:
    """Evaluate ``condition`` on every row of a feature frame at once.

    Parameters
    ----------
    condition : Condition
        A parsed condition.
    frame : pandas.DataFrame
        One row per child; columns are features.

    Returns
    -------
    pandas.Series of bool
        ``True`` where the condition is known to be true; missing data never satisfies a
        comparison. Same index as ``frame``.

    Raises
    ------
    PolicyError
        If the frame lacks a feature the condition reads, or a column's type cannot be compared.
    """
    _require_features(condition_features(condition), frame.columns, "frame")
    return _eval_frame(condition, frame).fillna(False).astype(bool)


def fired_rules(policy: TierPolicy, record: Mapping[Any, object]) -> tuple[FiredRule, ...]:
    """The rules of ``policy`` that fire for one child's feature record, in policy order.

    Raises
    ------
    PolicyError
        If the record lacks a feature a rule reads.
    """
    _require_features(policy.feature_names(), record.keys(), "record")
    return tuple(policy.fired(r) for r in policy.rules if _eval_record(r.when, record) is True)


def rule_hits(policy: TierPolicy, frame: pd.DataFrame) -> pd.DataFrame:
    """One boolean column per rule (named by its ``rules_fired`` label), one row per child.

    Raises
    ------
    PolicyError
        If the frame lacks a feature a rule reads.
    """
    _require_features(policy.feature_names(), frame.columns, "frame")
    columns: dict[Hashable, pd.Series] = {
        policy.fired(rule).label: evaluate(rule.when, frame) for rule in policy.rules
    }
    return pd.DataFrame(columns, index=frame.index, columns=list(policy.rule_labels()))


__all__ = [
    "DEFAULT_POLICY_RESOURCE",
    "AllOf",
    "AnyOf",
    "AreaCapacity",
    "Capacity",
    "Comparison",
    "Condition",
    "ExpectedMix",
    "FiredRule",
    "FloorRule",
    "HardRule",
    "Hysteresis",
    "MonitoringLimits",
    "NotOf",
    "Role",
    "Rule",
    "Tier",
    "TierPolicy",
    "TierSpec",
    "condition_features",
    "evaluate",
    "evaluate_record",
    "fired_rules",
    "load_policy",
    "most_severe",
    "parse_condition",
    "rule_hits",
]
