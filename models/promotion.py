"""Promotion: the champion gate's recorded verdict, and a supervisor's approval of a
re-evaluation.

**The gate.** Training (``models.gate``, ``models.train``) decides whether a model beat both
simple baselines in enough time folds and records the verdict as two run tags;
:func:`check_champion_gate` reads them back. The reading side lives apart from the gate's
computation so that the model registry, which every part of the product imports to load the
champion, can refuse a failed gate inside ``ModelRegistry.promote`` without pulling training
code along.

**The approval.** ``shouhu monitoring reevaluate`` writes a report under
``$SHOUHU_HOME/monitoring/reevaluation/<quarter>/`` (``reevaluation.json``, with a signed note
kept in ``notes/v<version>.yaml``). A supervisor approves its challenger through the web
pages or ``shouhu monitoring approve``; both call :func:`approve_promotion`, which lives here,
below both ``service`` and ``monitoring`` (import-linter keeps those two apart, and the
service may not import training code). It reads the report as JSON and refuses, before
anything changes, when:

- the re-evaluation does not recommend ``promote`` (every failed blocking check is named:
  the champion gate, the minimum precision, "clearly better", no regression, and fairness,
  which needs a supervisor's signed note);
- the signed note a ``promote`` rests on is gone from beside the report or no longer has the
  SHA-256 the report recorded;
- the champion changed since the re-evaluation (its comparison is then about another model);

then promotes through ``ModelRegistry.promote`` (which re-checks the champion gate and the
policy's pre-registered minimum precision, and tags the version with the approver, the reason
and the quarter) and appends one line to ``$SHOUHU_HOME/monitoring/approvals.jsonl``.
:func:`review_approval` is the same check without the promotion, for the page that shows what
a supervisor is about to approve. Going against a ``keep`` stays possible for a person with the
registry's own command (``shouhu models promote``), which the champion gate still guards.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shouhu.errors import NotFoundError, PromotionRefusedError

if TYPE_CHECKING:
    from models.policy import TierPolicy
    from models.registry import ModelRegistry

logger = logging.getLogger(__name__)

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


# --------------------------------------------------------------------------------------------
# Re-evaluation reports, as the approval reads them
# --------------------------------------------------------------------------------------------

#: Under ``$SHOUHU_HOME/monitoring``: one folder per quarter re-evaluated.
REEVALUATION_DIR = "reevaluation"
#: The report's JSON (``shouhu monitoring reevaluate --json`` plus ``report``).
REEVALUATION_JSON = "reevaluation.json"
#: Signed notes kept beside the report, ``v<version>.yaml``.
NOTES_DIR = "notes"
#: The append-only log of approvals, in ``$SHOUHU_HOME/monitoring``.
APPROVALS_FILE = "approvals.jsonl"
#: The approvals log's ``event`` and the service's audit action.
APPROVAL_EVENT = "approve_promotion"
#: The recommendation an approval needs.
PROMOTE = "promote"
_QUARTER = re.compile(r"^[0-9]{4}Q[1-4]$")


def _quarter(quarter: str) -> str:
    text = str(quarter).strip().upper()
    if not _QUARTER.match(text):
        # Also what keeps a quarter from the web pages from naming another folder.
        raise NotFoundError(f"no re-evaluation of {quarter!r} (a quarter is written YYYYQn)")
    return text


def reevaluation_folder(monitoring_dir: Path, quarter: str) -> Path:
    """``<monitoring_dir>/reevaluation/<quarter>``.

    Raises
    ------
    NotFoundError
        If ``quarter`` is not written ``YYYYQn``.
    """
    return Path(monitoring_dir) / REEVALUATION_DIR / _quarter(quarter)


def note_path(monitoring_dir: Path, quarter: str, version: int) -> Path:
    """Where the signed note about ``version`` on ``quarter`` is kept beside the report."""
    return reevaluation_folder(monitoring_dir, quarter) / NOTES_DIR / f"v{int(version)}.yaml"


def approvals_log(monitoring_dir: Path) -> Path:
    """``<monitoring_dir>/approvals.jsonl``: the append-only log of approvals."""
    return Path(monitoring_dir) / APPROVALS_FILE


def approvals(monitoring_dir: Path) -> list[dict[str, Any]]:
    """The approvals log's lines, oldest first; none without a log, and a line that does not
    parse (cut short by a full disk, say) is skipped."""
    path = approvals_log(monitoring_dir)
    if not path.is_file():
        return []
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(entry, dict):
            out.append(entry)
    return out


def read_reevaluation(monitoring_dir: Path, quarter: str) -> dict[str, Any] | None:
    """The stored re-evaluation of ``quarter``, or ``None`` when there is none (or unreadable).

    Raises
    ------
    NotFoundError
        If ``quarter`` is not written ``YYYYQn``.
    """
    path = reevaluation_folder(monitoring_dir, quarter) / REEVALUATION_JSON
    try:
        payload = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None
    return payload if isinstance(payload, dict) else None


def reevaluations(monitoring_dir: Path) -> list[dict[str, Any]]:
    """Every stored re-evaluation, newest quarter first.

    Parameters
    ----------
    monitoring_dir : Path
        ``$SHOUHU_HOME/monitoring``.

    Returns
    -------
    list of dict
        The reports' JSON objects (a folder whose JSON cannot be read is left out).
    """
    root = Path(monitoring_dir) / REEVALUATION_DIR
    if not root.is_dir():
        return []
    found = []
    for folder in root.iterdir():
        if folder.is_dir() and _QUARTER.match(folder.name):
            payload = read_reevaluation(monitoring_dir, folder.name)
            if payload is not None:
                found.append(payload)
    return sorted(found, key=lambda p: (str(p.get("quarter", "")), str(p.get("created_at", ""))))[
        ::-1
    ]


def latest_reevaluation(monitoring_dir: Path, version: int) -> dict[str, Any] | None:
    """The newest stored re-evaluation whose challenger is ``version``, if any.

    Parameters
    ----------
    monitoring_dir : Path
        ``$SHOUHU_HOME/monitoring``.
    version : int
        The challenger version.

    Returns
    -------
    dict or None
        That re-evaluation's JSON object.
    """
    found = [p for p in reevaluations(monitoring_dir) if challenger_version(p) == version]
    return max(found, key=lambda p: str(p.get("created_at", ""))) if found else None


def challenger_version(payload: Mapping[str, Any]) -> int | None:
    """The challenger version a re-evaluation is about (``None`` if it names none)."""
    version = (payload.get("challenger") or {}).get("version")
    return version if isinstance(version, int) else None


def _champion_then(payload: Mapping[str, Any]) -> int | None:
    # ``champion_version`` is the registry's champion when the re-evaluation ran; reports
    # written before it was recorded carry only the evaluated champion.
    if "champion_version" in payload:
        value = payload["champion_version"]
        return value if isinstance(value, int) else None
    version = (payload.get("champion") or {}).get("version")
    return version if isinstance(version, int) else None


# --------------------------------------------------------------------------------------------
# Approving
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ApprovalReview:
    """What an approval of one re-evaluation would rest on, and what stands in its way.

    Parameters
    ----------
    quarter : str
        The quarter re-evaluated.
    challenger_version : int or None
        The version the report recommends or not.
    champion_version : int or None
        The champion when the re-evaluation ran.
    current_champion : int or None
        The champion now.
    recommendation : str
        ``promote`` or ``keep``.
    reasons : list of str
        The report's reasons, failed blocking checks first.
    blockers : list of str
        Why an approval is refused now; empty when it may go ahead.
    report : str or None
        The report's HTML.
    note : dict or None
        The signed note the report applied (signer, date, SHA-256).
    created_at : str or None
        When the report was written.
    """

    quarter: str
    challenger_version: int | None
    champion_version: int | None
    current_champion: int | None
    recommendation: str
    reasons: list[str] = field(default_factory=list)
    blockers: list[str] = field(default_factory=list)
    report: str | None = None
    note: dict[str, Any] | None = None
    created_at: str | None = None

    @property
    def approvable(self) -> bool:
        """Whether nothing stands in the way (the registry's own checks still apply)."""
        return not self.blockers

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (every field plus ``approvable``)."""
        return {**asdict(self), "approvable": self.approvable}


def _failed_checks(payload: Mapping[str, Any], quarter: str, version: int | None) -> list[str]:
    out = []
    for check in payload.get("checks") or []:
        if check.get("passed") or not check.get("blocking", True):
            continue
        line = f"{check.get('name')}: {check.get('reason')}"
        if check.get("name") == "fairness":
            line += (
                "; a supervisor who accepts these disparities signs a note and the analyst "
                f"re-runs `shouhu monitoring reevaluate --quarter {quarter} --note FILE "
                f"--challenger {version}` (docs/operations.md)"
            )
        out.append(line)
    return out


def _note_blocker(monitoring_dir: Path, quarter: str, version: int, note: Mapping[str, Any]) -> str:
    path = note_path(monitoring_dir, quarter, version)
    try:
        # The digest of the text as read, as ``monitoring.reevaluation.load_note`` takes it.
        digest = hashlib.sha256(path.read_text(encoding="utf-8").encode("utf-8")).hexdigest()
    except (OSError, UnicodeDecodeError):
        return f"the signed note the re-evaluation rests on is missing ({path.name})"
    if digest != note.get("sha256"):
        return (
            f"the signed note {path.name} changed since the re-evaluation (its SHA-256 no longer "
            "matches the report's): re-run the re-evaluation with the note as signed"
        )
    if note.get("quarter") != quarter or note.get("challenger_version") != version:
        about = f"{note.get('quarter')} version {note.get('challenger_version')}"
        return f"the signed note is about {about}, not {quarter} version {version}"
    return ""


def review_approval(
    payload: Mapping[str, Any],
    *,
    current_champion: int | None,
    monitoring_dir: Path,
) -> ApprovalReview:
    """What stands in the way of approving a re-evaluation's challenger now.

    Parameters
    ----------
    payload : mapping
        The re-evaluation's JSON (:func:`read_reevaluation`).
    current_champion : int or None
        The version the registry's ``champion`` alias names now.
    monitoring_dir : Path
        ``$SHOUHU_HOME/monitoring`` (where the signed note is kept).

    Returns
    -------
    ApprovalReview
        The basis and the blockers (see the module docstring).
    """
    quarter = _quarter(str(payload.get("quarter", "")))
    version = challenger_version(payload)
    then = _champion_then(payload)
    recommendation = str(payload.get("recommendation", ""))
    blockers: list[str] = []
    if version is None:
        blockers.append(f"the re-evaluation of {quarter} names no challenger version")
    if recommendation != PROMOTE:
        failed = _failed_checks(payload, quarter, version)
        blockers.append(
            f"the re-evaluation of {quarter} recommends {recommendation or 'nothing'}, not "
            f"promote" + (f" ({len(failed)} blocking checks failed)" if failed else "")
        )
        blockers.extend(failed)
    note = payload.get("note")
    if version is not None and isinstance(note, Mapping):
        problem = _note_blocker(monitoring_dir, quarter, version, note)
        if problem:
            blockers.append(problem)
    if version is not None and current_champion == version:
        blockers.append(f"version {version} is already the champion")
    elif version is not None and current_champion != then:
        blockers.append(
            f"the champion changed since the re-evaluation (version {then} then, "
            f"{current_champion} now): its comparison is about another model; re-run "
            f"`shouhu monitoring reevaluate --quarter {quarter} --challenger {version}`"
        )
    return ApprovalReview(
        quarter=quarter,
        challenger_version=version,
        champion_version=then,
        current_champion=current_champion,
        recommendation=recommendation,
        reasons=[str(r) for r in payload.get("reasons") or []],
        blockers=blockers,
        report=payload.get("report"),
        note=dict(note) if isinstance(note, Mapping) else None,
        created_at=payload.get("created_at"),
    )


def _append_line(path: Path, entry: Mapping[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    # Append only, fsynced: an approval is an audit record that must survive a crash.
    with path.open("a", encoding="utf-8") as handle:
        handle.write(json.dumps(entry, ensure_ascii=False, sort_keys=True) + "\n")
        handle.flush()
        os.fsync(handle.fileno())


def approve_promotion(
    registry: ModelRegistry,
    policy: TierPolicy,
    monitoring_dir: Path,
    *,
    quarter: str,
    version: int,
    approver: str,
    reason: str,
    now: datetime | None = None,
) -> dict[str, Any]:
    """Approve a re-evaluation's challenger: promote it and log who, why and on what basis.

    What the supervisor's approval page and ``shouhu monitoring approve`` call. Every check
    happens before anything is written, so a refusal changes nothing.

    Parameters
    ----------
    registry : ModelRegistry
        The model registry.
    policy : TierPolicy
        The tier policy whose pre-registered minimum precision applies.
    monitoring_dir : Path
        ``$SHOUHU_HOME/monitoring``.
    quarter : str
        The re-evaluation approved (``YYYYQn``).
    version : int
        Its challenger, as the approver saw it (refused if the report is about another).
    approver : str
        The supervisor (the signed-in account on the pages).
    reason : str
        Why; required.
    now : datetime, optional
        Time of the approval (UTC now by default).

    Returns
    -------
    dict
        The registry's promotion record (``ModelRegistry.promote``) with ``event:
        "approve_promotion"`` and ``reevaluation`` (quarter, recommendation, reasons, report,
        the champion then, the note's SHA-256), as appended to :func:`approvals_log`.

    Raises
    ------
    PromotionRefusedError
        If anything in :func:`review_approval` stands in the way, or the registry refuses
        (blank approver or reason, failed champion gate, precision below the minimum).
    NotFoundError
        If the quarter has no re-evaluation, or the version does not exist.
    """
    payload = read_reevaluation(monitoring_dir, quarter)
    if payload is None:
        raise NotFoundError(f"no re-evaluation of {quarter} under {monitoring_dir}")
    named = challenger_version(payload)
    if named != version:
        raise PromotionRefusedError(
            f"version {version} was not promoted: the re-evaluation of {quarter} is about "
            f"version {named}"
        )
    champion = registry.champion_info()
    review = review_approval(
        payload,
        current_champion=None if champion is None else champion.version,
        monitoring_dir=monitoring_dir,
    )
    if review.blockers:
        raise PromotionRefusedError(
            f"version {version} was not promoted: " + "; ".join(review.blockers)
        )
    note = review.note or {}
    record = registry.promote(
        version,
        approver=approver,
        reason=reason,
        policy=policy,
        now=now,
        tags={"promotion_basis": f"re-evaluation {review.quarter}"},
    )
    entry = {
        **record.to_dict(),
        "event": APPROVAL_EVENT,
        "reevaluation": {
            "quarter": review.quarter,
            "recommendation": review.recommendation,
            "reasons": review.reasons,
            "report": review.report,
            "created_at": review.created_at,
            "champion_version": review.champion_version,
            "note_sha256": note.get("sha256"),
        },
    }
    _append_line(approvals_log(monitoring_dir), entry)
    logger.info("promotion approved", extra={"version": version, "quarter": review.quarter})
    return entry


__all__ = [
    "APPROVALS_FILE",
    "APPROVAL_EVENT",
    "FAILED",
    "GATE_REASON_TAG",
    "GATE_TAG",
    "NOTES_DIR",
    "PASSED",
    "PROMOTE",
    "REEVALUATION_DIR",
    "REEVALUATION_JSON",
    "ApprovalReview",
    "approvals",
    "approvals_log",
    "approve_promotion",
    "challenger_version",
    "check_champion_gate",
    "latest_reevaluation",
    "note_path",
    "read_reevaluation",
    "reevaluation_folder",
    "reevaluations",
    "review_approval",
]
