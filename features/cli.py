"""``shouhu features …``: synthetic population, ingestion and the point-in-time feature store.

Command bodies are thin calls into the library; they read settings and pass plain values down.
"""

from __future__ import annotations

import json
from datetime import date, datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

app = typer.Typer(
    help="Sources, validation, synthetic population and the feature store.", no_args_is_help=True
)


class Scenario(StrEnum):
    """Named synthetic scenarios (see docs/synthetic-population.md)."""

    baseline = "baseline"
    new_township = "new-township"
    visit_lapse = "visit-lapse"
    migration_shock = "migration-shock"
    school_closure = "school-closure"


class LedgerFormat(StrEnum):
    """File format of the delivered ledgers."""

    csv = "csv"
    xlsx = "xlsx"
    parquet = "parquet"


def _emit(payload: dict[str, Any], json_out: bool) -> None:
    if json_out:
        typer.echo(json.dumps(payload, ensure_ascii=False, default=str))
    else:
        for key, value in payload.items():
            typer.echo(f"{key}: {value}", err=True)


def _month(value: str | None) -> date | None:
    if value is None:
        return None
    try:
        return datetime.strptime(value, "%Y-%m").date()
    except ValueError:
        raise typer.BadParameter(f"{value!r} is not a month in the form YYYY-MM") from None


@app.command()
def synth(
    out: Annotated[Path, typer.Option(help="output folder (sources/, truth/, manifest.json)")],
    children: Annotated[int, typer.Option(min=1, help="children in the population")] = 20000,
    months: Annotated[int, typer.Option(min=1, max=120, help="months of ledgers")] = 24,
    start: Annotated[str, typer.Option(help="first month, YYYY-MM")] = "2024-01",
    seed: Annotated[int, typer.Option(help="random seed")] = 7,
    scenario: Annotated[Scenario, typer.Option(help="named scenario")] = Scenario.baseline,
    scenario_start: Annotated[
        str | None, typer.Option(help="month the scenario begins, YYYY-MM (default: 2/3 in)")
    ] = None,
    fmt: Annotated[LedgerFormat, typer.Option("--format", help="ledger file format")] = (
        LedgerFormat.csv
    ),
    json_out: Annotated[bool, typer.Option("--json", help="print one JSON object")] = False,
) -> None:
    """Generate a synthetic population with hidden truth, as monthly ledger batches."""
    from features.synthetic import SynthConfig, generate

    config = SynthConfig(
        children=children,
        months=months,
        start=_month(start) or date(2024, 1, 1),
        seed=seed,
        scenario=scenario.value,
        scenario_start=_month(scenario_start),
        fmt=fmt.value,
    )
    summary = generate(config, out, progress=not json_out)
    _emit(summary, json_out)


@app.command()
def ingest(
    paths: Annotated[list[Path], typer.Argument(help="batch folders, files, or a sources/ folder")],
    mapping: Annotated[
        Path | None, typer.Option(help="county header/value mapping file (YAML)")
    ] = None,
    json_out: Annotated[bool, typer.Option("--json", help="print one JSON object")] = False,
) -> None:
    """Load ledger files into the store: validate, pseudonymise, keep rejects, skip repeats."""
    from features.ingest import ingest_paths
    from features.mapping import load_mapping
    from features.rawstore import connect
    from features.store import FeatureStore
    from shouhu.errors import SourceFileError
    from shouhu.settings import get_settings

    settings = get_settings()
    header_map = load_mapping(mapping or settings.ingest.mapping_file)
    con = connect(
        settings.store_path,
        threads=settings.store.threads,
        memory_limit=settings.store.memory_limit,
    )
    try:
        summary = ingest_paths(
            con,
            paths,
            mapping=header_map,
            key=settings.pseudonym_key.get_secret_value(),
            max_future_days=settings.ingest.max_future_days,
            progress=not json_out,
        )
        # Precompute which record versions later rows supersede, so read-only builds skip it.
        FeatureStore(con).refresh()
    finally:
        con.close()
    _emit(summary.as_dict(), json_out)
    if summary.file_errors:
        # The other files were loaded; a refused file changed nothing and must be resent.
        for name, reason in summary.file_errors:
            typer.echo(f"error: {name}: {reason}", err=True)
        raise typer.Exit(SourceFileError.exit_code)


@app.command()
def build(
    as_of: Annotated[datetime, typer.Option(formats=["%Y-%m-%d"], help="as-of date")],
    out: Annotated[Path | None, typer.Option(help="write the features as Parquet")] = None,
    json_out: Annotated[bool, typer.Option("--json", help="print one JSON object")] = False,
) -> None:
    """Compute every feature for every child registered on the as-of date."""
    import time

    from features.definitions import feature_names
    from features.rawstore import connect
    from features.store import FeatureStore
    from shouhu.settings import get_settings

    settings = get_settings()
    started = time.perf_counter()
    con = connect(
        settings.store_path,
        read_only=True,
        threads=settings.store.threads,
        memory_limit=settings.store.memory_limit,
    )
    try:
        frame = FeatureStore(con).build(as_of.date())
    finally:
        con.close()
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        frame.to_parquet(out, index=False)
    _emit(
        {
            "as_of": as_of.date().isoformat(),
            "children": len(frame),
            "features": len(set(feature_names()) & set(frame.columns)),
            "out": str(out) if out else None,
            "seconds": round(time.perf_counter() - started, 3),
        },
        json_out,
    )


@app.command("list")
def list_features(
    json_out: Annotated[bool, typer.Option("--json", help="print one JSON object")] = False,
) -> None:
    """The feature registry: name, domain, window, Chinese and English descriptions."""
    from features.definitions import registry_records

    records = registry_records()
    if json_out:
        typer.echo(json.dumps({"features": records}, ensure_ascii=False))
        return
    for rec in records:
        window = f"{rec['window_days']}d" if rec["window_days"] else "-"
        typer.echo(f"{rec['name']:<40} {rec['domain']:<14} {window:>6}  {rec['zh']} / {rec['en']}")


@app.command()
def mapping(
    out: Annotated[Path, typer.Option(help="where to write the mapping file (YAML)")],
) -> None:
    """Write the default header/value mapping, for a county to start its own from."""
    from features.mapping import write_default_mapping

    typer.echo(f"wrote {write_default_mapping(out)}", err=True)


@app.command()
def featuredoc(
    out: Annotated[Path, typer.Option(help="Markdown file to update")] = Path(
        "docs/feature-store.md"
    ),
) -> None:
    """Regenerate the feature list in docs/feature-store.md from the feature registry."""
    from features.feature_doc import write_feature_doc

    write_feature_doc(out)
    typer.echo(f"updated {out}", err=True)


@app.command()
def datamodel(
    out: Annotated[Path, typer.Option(help="Markdown file to write")] = Path("docs/data-model.md"),
) -> None:
    """Write the data-model reference (docs/data-model.md) from the canonical schema."""
    from features.datamodel_doc import render_data_model

    out.write_text(render_data_model(), encoding="utf-8")
    typer.echo(f"wrote {out}", err=True)


__all__ = ["app"]
