"""Measure a generated population against its calibration targets.

Reads what :func:`generate` wrote (the ledgers as delivered, and the truth) and returns each
target with the figure achieved, so the documentation table and the tests check the same
numbers. Ledger figures are measured on the delivered files (defective cells are ignored), so
they include what the ledgers miss or distort.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pandas as pd

from features.schema import TABLES_BY_NAME, TableSpec
from features.synthetic import params
from features.synthetic.timeline import DROWNING_MONTH_SHARE

FloatArray = npt.NDArray[np.float64]
WINDOW_DAYS = 90
DOMAIN_COLUMNS = {
    "serious_harm": "p_serious_harm",
    "dropout": "p_dropout",
    "guardianship_breakdown": "p_guardianship_breakdown",
    "mental_health": "p_mental_health",
}


@dataclass(frozen=True)
class Figure:
    """One calibration target and the figure achieved."""

    name: str
    target: str
    achieved: float
    low: float
    high: float
    source: str

    @property
    def ok(self) -> bool:
        """Whether the achieved figure lies in the accepted range."""
        return self.low <= self.achieved <= self.high


def read_ledger(path: Path) -> pd.DataFrame:
    """One delivered ledger file as strings, whatever its format or encoding."""
    if path.suffix == ".parquet":
        return pd.read_parquet(path).astype("string")
    if path.suffix == ".xlsx":
        return pd.read_excel(path, dtype=str, engine="openpyxl").astype("string")
    raw = path.read_bytes()
    for encoding in ("utf-8-sig", "gb18030"):
        try:
            text = raw.decode(encoding)
            break
        except UnicodeDecodeError:
            continue
    return pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False, na_values=[""]).astype(
        "string"
    )


def load_table(out: Path, table: str, batches: list[str] | None = None) -> pd.DataFrame:
    """Every delivered row of ``table`` with canonical column names and a ``_batch`` column."""
    spec: TableSpec = TABLES_BY_NAME[table]
    names = {c.zh: c.name for c in spec.columns}
    frames = []
    for folder in sorted((out / "sources").iterdir()):
        if batches is not None and folder.name not in batches:
            continue
        for path in sorted(folder.glob(f"{spec.zh}_*")):
            frame = read_ledger(path).rename(columns=names)
            frame["_batch"] = folder.name
            frames.append(frame)
    if not frames:
        return pd.DataFrame(columns=[*spec.column_names, "_batch"])
    return pd.concat(frames, ignore_index=True)


def label_share(values: pd.Series, label: str) -> float:
    """Share of valid (non-missing) values equal to ``label`` after trimming spaces."""
    clean = values.dropna().str.strip()
    return float((clean == label).mean()) if len(clean) else float("nan")


def auc(scores: FloatArray, labels: npt.NDArray[np.bool_]) -> float:
    """Area under the ROC curve (Mann-Whitney, ties averaged)."""
    n_pos = int(labels.sum())
    n_neg = len(labels) - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = pd.Series(scores).rank(method="average").to_numpy()
    return float((ranks[labels].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def oracle_check(out: Path) -> pd.DataFrame:
    """Per month end with a complete 90-day window: mean oracle probability, realised rate and
    AUC for each domain and for any adverse outcome."""
    risk = pd.read_parquet(out / "truth" / "risk.parquet")
    outcomes = pd.read_parquet(out / "truth" / "outcomes.parquet")
    risk["as_of"] = pd.to_datetime(risk["as_of"])
    outcomes["event_date"] = pd.to_datetime(outcomes["event_date"])
    end = risk["as_of"].max()
    rows = []
    for key, frame in risk.groupby("as_of", sort=True):
        as_of = pd.Timestamp(key)  # type: ignore[arg-type]
        if as_of + pd.Timedelta(days=WINDOW_DAYS) > end:
            continue
        window = outcomes[
            (outcomes["event_date"] > as_of)
            & (outcomes["event_date"] <= as_of + pd.Timedelta(days=WINDOW_DAYS))
        ]
        record: dict[str, object] = {"as_of": as_of.date(), "children": len(frame)}
        for domain, column in (*DOMAIN_COLUMNS.items(), ("any", "p_any")):
            hit = window if domain == "any" else window[window["domain"] == domain]
            y = frame["id_number"].isin(set(hit["id_number"])).to_numpy()
            p = frame[column].to_numpy(dtype=np.float64)
            record[f"{domain}_p"] = float(p.mean())
            record[f"{domain}_rate"] = float(y.mean())
            record[f"{domain}_auc"] = auc(p, y)
        rows.append(record)
    return pd.DataFrame(rows)


def _binomial_range(target: float, n: int, slack: float) -> tuple[float, float]:
    """Accepted range: the target ± (4 binomial standard errors + ``slack``)."""
    se = np.sqrt(max(target * (1 - target), 1e-6) / max(n, 1))
    return max(0.0, target - 4 * se - slack), min(1.0, target + 4 * se + slack)


def measure(out: Path) -> list[Figure]:
    """Every calibration target with the achieved figure (first-day population from the first
    batch, screenings and injuries over the period, outcomes and oracle from the truth)."""
    figures: list[Figure] = []
    first = sorted(p.name for p in (out / "sources").iterdir())[0]
    start = date.fromisoformat(f"{first}-01")
    registry = load_table(out, "children", [first])
    registry = registry[
        pd.to_datetime(registry["registered_date"], errors="coerce") < pd.Timestamp(start)
    ]
    n = len(registry)
    note = "note §3, 2018 MCA count"

    def _add(
        name: str,
        target: float,
        achieved: float,
        n_obs: int,
        source: str,
        slack: float = 0.01,
        text: str | None = None,
    ) -> None:
        low, high = _binomial_range(target, n_obs, slack)
        figures.append(Figure(name, text or f"{target:.1%}", achieved, low, high, source))

    _add("boys", params.SHARE_BOYS, label_share(registry["sex"], "男"), n, note)
    birth = pd.to_datetime(registry["birth_date"], errors="coerce").dropna()
    age = (pd.Timestamp(start) - birth).dt.days / 365.25
    for lo, hi, share in params.AGE_BAND_SHARES:
        achieved = float(((age >= lo) & (age < hi + 1)).mean())
        _add(f"age {lo}-{hi}", share, achieved, n, note)
    _add(
        "disabled", params.SHARE_DISABLED, label_share(registry["disability"], "是"), n, note, 0.003
    )
    _add(
        "seriously ill",
        params.SHARE_SERIOUSLY_ILL,
        label_share(registry["serious_illness"], "是"),
        n,
        note + " (0.1-0.3 %)",
        0.002,
    )
    _add(
        "minimum income (低保)",
        params.SHARE_DIBAO,
        label_share(registry["poverty_status"], "低保"),
        n,
        note + " (8万+ of 697万)",
        0.005,
    )
    _add(
        "no household registration",
        params.SHARE_NO_HUKOU,
        label_share(registry["hukou_status"], "无户籍"),
        n,
        "assumption (a key group)",
        0.004,
    )

    guardianship = load_table(out, "guardianship", [first])
    guardianship = guardianship.drop_duplicates("id_number")
    n_g = len(guardianship)
    caregivers = (
        ("grandparent", "祖父母或外祖父母"),
        ("relative", "其他亲属"),
        ("parent", "父母一方"),
        ("none", "无"),
    )
    caregiver_source = {
        "grandparent": "note §3, 2018 MCA count (96 % of those without an incapable parent)",
        "relative": "note §3, 2018 MCA count (4 % of those without an incapable parent)",
        "parent": "note §3, 2016 screening (not broken out in 2018)",
        "none": "note §3, 2018 MCA count (no such group after the 2016-17 campaign)",
    }
    for key, label in caregivers:
        _add(
            f"caregiver: {key}",
            params.CAREGIVER_SHARES[key],
            label_share(guardianship["caregiver_relation"], label),
            n_g,
            caregiver_source[key],
            0.015,
        )
    # The existing file's rows carry their real (earlier) dates: age the caregivers to the
    # first day (plus half a year, as ages are written in completed years).
    since = (pd.Timestamp(start) - _dates(guardianship["change_date"])).dt.days / 365.25
    ages = (pd.to_numeric(guardianship["caregiver_age"], errors="coerce") + since + 0.5).dropna()
    figures.append(
        Figure(
            "caregiver age on the first day (mean, years)",
            "58.2",
            float(ages.mean()),
            56.2,
            60.2,
            "2017 floating-population report (27 poor counties), see params.CAREGIVER_AGE",
        )
    )
    _add(
        "poor guardianship (with grandparents or relatives)",
        params.POOR_GUARDIANSHIP_SHARE,
        poor_guardianship_share(guardianship),
        n_g,
        "note §3, 2016 screening (about 3.5 %)",
        0.015,
    )
    contact_labels = ("每周", "每月", "每季度", "每年", "从不")
    contact_source = (
        "2017 floating-population report (40.4 % phone weekly)",
        "the rest of the phone figures",
        "2015 white paper (1,519万 of 6,100万 phone about quarterly)",
        "2015 white paper (885万 phone once or twice a year)",
        "2015 white paper (260万+ no phone call all year)",
    )
    for label, share, source in zip(
        contact_labels, params.CONTACT_SHARES, contact_source, strict=True
    ):
        _add(
            f"parent contact (phone): {label}",
            share,
            label_share(guardianship["parent_contact"], label),
            n_g,
            source,
            0.02,
        )
    figures.extend(_end_of_period_figures(out))

    screenings = load_table(out, "screenings")
    school = screenings[screenings["screener"].str.strip() == "学校"]
    dep = pd.to_numeric(school["depression_score"], errors="coerce").dropna()
    _add(
        "depressive symptoms (CES-DC >= 16)",
        0.307,
        float((dep >= 16).mean()),
        len(dep),
        "note §3, Wang 2019 pooled 30.7 %",
        0.03,
    )
    positive = label_share(school["positive"], "是")
    figures.append(
        Figure("screen positive (referral)", "a few percent", positive, 0.02, 0.07, "project brief")
    )
    ideation = label_share(school["suicidal_ideation"], "是")
    figures.append(
        Figure(
            "suicidal ideation (current, at screening)",
            "5-10 %",
            ideation,
            0.04,
            0.11,
            "assumption below the 18.7 % 12-month figure, note §3",
        )
    )

    figures.extend(_truth_figures(out, start))
    return figures


def _dates(values: pd.Series) -> pd.Series:
    """Ledger dates as timestamps (defective spellings become missing)."""
    return pd.to_datetime(values.str.strip(), errors="coerce", format="%Y-%m-%d")


def poor_guardianship_share(guardianship: pd.DataFrame) -> float:
    """Share of guardianship rows with a grandparent or relative as caregiver that assess
    capacity as insufficient or improper (the 2016 screening's "poor guardianship")."""
    poor = guardianship["capacity"].str.strip().isin(["监护不足", "监护失当"]) & guardianship[
        "caregiver_relation"
    ].str.strip().isin(["祖父母或外祖父母", "其他亲属"])
    return float(poor.mean())


def _end_of_period_figures(out: Path) -> list[Figure]:
    """The standing shares at the end of the run: the last quarterly file update and the
    newest registry version of every child still registered.

    The first batch shows where the run starts; these show that the dynamics keep the
    population where the statistics put it instead of drifting away over the months.
    """
    figures: list[Figure] = []
    batches = sorted(p.name for p in (out / "sources").iterdir())
    end = pd.Timestamp(f"{batches[-1]}-01") + pd.offsets.MonthEnd(0)
    guardianship = load_table(out, "guardianship")
    when = _dates(guardianship["change_date"])
    # Quarterly updates are filed in March, June, September and December; an impossible date
    # (a defect) is never the last one.
    last_review = when[when.dt.month.isin([3, 6, 9, 12]) & (when <= end)].max()
    if pd.isna(last_review):
        return figures
    review = guardianship[
        (when.dt.year == last_review.year) & (when.dt.month == last_review.month)
    ].drop_duplicates("id_number", keep="last")
    n_r = len(review)
    label = f"{last_review:%Y-%m} update"

    low, high = _binomial_range(params.POOR_GUARDIANSHIP_SHARE, n_r, 0.015)
    figures.append(
        Figure(
            f"poor guardianship (with grandparents or relatives), {label}",
            f"{params.POOR_GUARDIANSHIP_SHARE:.1%}",
            poor_guardianship_share(review),
            low,
            high,
            "note §3, 2016 screening (about 3.5 %), kept through the run",
        )
    )
    nobody = label_share(review["caregiver_relation"], "无")
    # No published standing share (the 2018 count has none): the breakdowns of the last weeks
    # whose guardian is still being arranged, under 1.5 % give or take sampling.
    _, high = _binomial_range(0.0075, n_r, 0.0075)
    figures.append(
        Figure(
            f"no guardian (caregiver none), {label}",
            "under 1.5 %",
            nobody,
            0.0,
            high,
            "note §3, 2018 MCA count (no standing group): breakdowns, until a guardian is arranged",
        )
    )
    last_home = _dates(review["parent_last_visit"])
    on = _dates(review["change_date"])
    not_home = last_home.isna() | (last_home < on - pd.Timedelta(days=365))
    low, high = _binomial_range(0.151, n_r, 0.025)
    figures.append(
        Figure(
            f"parents not home for over a year (or never on record), {label}",
            "15.1%",
            float(not_home.mean()),
            low,
            high,
            "note §3, 2015 white paper (15.1 % did not see their parents all year)",
        )
    )
    registry = load_table(out, "children")
    registry = registry.assign(_order=np.arange(len(registry)))
    registry["_when"] = _dates(registry["registered_date"])
    newest = registry.sort_values(["_when", "_order"]).drop_duplicates("id_number", keep="last")
    current = newest[newest["status"].str.strip() == "在册"]
    low, high = _binomial_range(params.SHARE_DIBAO, len(current), 0.005)
    figures.append(
        Figure(
            "minimum income (低保), end of period",
            f"{params.SHARE_DIBAO:.1%}",
            label_share(current["poverty_status"], "低保"),
            low,
            high,
            "note §3, 2018 MCA count, kept through the run",
        )
    )
    return figures


def _truth_figures(out: Path, start: date) -> list[Figure]:
    figures: list[Figure] = []
    children = pd.read_parquet(out / "truth" / "children.parquet")
    events = pd.read_parquet(out / "truth" / "events.parquet")
    outcomes = pd.read_parquet(out / "truth" / "outcomes.parquet")
    year_end = pd.Timestamp(date(start.year + 1, start.month, start.day))
    entry = pd.to_datetime(children["entry_date"])
    exit_ = pd.to_datetime(children["exit_date"])
    whole_year = children[(entry <= pd.Timestamp(start)) & (exit_.isna() | (exit_ >= year_end))]
    injuries = pd.concat(
        [
            events.loc[events["kind"] == "accidental_injury", ["id_number", "event_date"]],
            outcomes.loc[
                outcomes["kind"].isin(["serious_injury", "drowning"]), ["id_number", "event_date"]
            ],
        ]
    )
    injuries["event_date"] = pd.to_datetime(injuries["event_date"])
    injured = set(injuries.loc[injuries["event_date"] < year_end, "id_number"])
    hit = whole_year["id_number"].isin(injured)
    n = len(whole_year)
    low, high = _binomial_range(0.0888, n, 0.01)
    figures.append(
        Figure(
            "annual injury incidence",
            "8.88 %",
            float(hit.mean()),
            low,
            high,
            "note §3, 27 poor counties 2016",
        )
    )
    boys = whole_year["sex"] == "male"
    figures.append(
        Figure(
            "injury incidence boys / girls",
            "> 1",
            float(hit[boys].mean() / max(hit[~boys].mean(), 1e-9)),
            1.05,
            3.0,
            "note §3 (higher for boys)",
        )
    )
    drown = pd.to_datetime(outcomes.loc[outcomes["kind"] == "drowning", "event_date"])
    month = drown.dt.month
    if len(drown) >= 20:
        share = float(month.isin([6, 7, 8, 9]).mean())
        expected = sum(DROWNING_MONTH_SHARE[5:9])
        low, high = _binomial_range(expected, len(drown), 0.03)
        figures.append(
            Figure(
                "drownings in June-September",
                f"{expected:.0%}",
                share,
                low,
                high,
                "note §3, 2014 national figures",
            )
        )
        low, high = _binomial_range(0.18, len(drown), 0.02)
        figures.append(
            Figure(
                "drownings in August",
                "18 %",
                float((month == 8).mean()),
                low,
                high,
                "note §3, 2014 national figures",
            )
        )
    check = oracle_check(out)
    ranges = {
        "serious_harm": (0.015, 0.03),
        "dropout": (0.02, 0.04),
        "guardianship_breakdown": (0.01, 0.02),
        "mental_health": (0.015, 0.03),
        "any": (0.06, 0.10),
    }
    for domain, (lo, hi) in ranges.items():
        figures.append(
            Figure(
                f"90-day rate: {domain}",
                f"{lo:.1%}-{hi:.1%}",
                float(check[f"{domain}_rate"].mean()),
                lo,
                hi,
                "project brief",
            )
        )
    figures.append(
        Figure(
            "oracle AUC, any adverse outcome",
            "0.80-0.90",
            float(check["any_auc"].mean()),
            0.80,
            0.90,
            "project brief",
        )
    )
    gap = float((check["any_p"] - check["any_rate"]).mean())
    figures.append(
        Figure(
            "oracle mean p - realised rate (any)",
            "0 ± 0.005",
            gap,
            -0.005,
            0.005,
            "calibration of the oracle",
        )
    )
    return figures


def figures_table(figures: list[Figure]) -> str:
    """The figures as a Markdown table."""
    lines = ["| figure | target | achieved | accepted range | source |", "|---|---|---|---|---|"]
    for f in figures:
        if "years" in f.name:
            fmt = "{:.1f}"
        elif "AUC" in f.name or "/" in f.name or " - " in f.name:
            fmt = "{:.3f}"
        else:
            fmt = "{:.1%}"
        lines.append(
            f"| {f.name} | {f.target} | {fmt.format(f.achieved)} | "
            f"{fmt.format(f.low)} – {fmt.format(f.high)} | {f.source} |"
        )
    return "\n".join(lines)


__all__ = [
    "Figure",
    "auc",
    "figures_table",
    "label_share",
    "load_table",
    "measure",
    "oracle_check",
    "poor_guardianship_share",
    "read_ledger",
]
