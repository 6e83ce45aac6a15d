"""``shouhu models …``: promotion of trained risk models (training and scoring follow).

Command bodies are thin calls into the library. They read settings and pass plain values down;
MLflow and the policy loader are imported inside the commands so ``shouhu --help`` stays fast.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from models.registry import ModelRegistry
    from shouhu.settings import Settings

app = typer.Typer(help="Train, evaluate, promote and score the risk models.", no_args_is_help=True)


@app.callback()
def models() -> None:
    """Train, evaluate, promote and score the risk models."""
    # A callback keeps this a command group even while it holds one command, so the call is
    # `models promote VERSION` both alone and once composed into `shouhu`.


def _emit(payload: dict[str, Any], json_out: bool) -> None:
    if json_out:
        typer.echo(json.dumps(payload, ensure_ascii=False, default=str))
    else:
        for key, value in payload.items():
            typer.echo(f"{key}: {value}", err=True)


def registry_from_settings(settings: Settings) -> ModelRegistry:
    """The model registry the settings point at (local under SHOUHU_HOME unless a URI is set).

    Parameters
    ----------
    settings : Settings
        The process's settings.

    Returns
    -------
    ModelRegistry
        Built from plain values; nothing is opened until it is used.
    """
    from models.registry import ModelRegistry

    local = settings.registry.tracking_uri is None
    return ModelRegistry(
        tracking_uri=settings.tracking_uri,
        registry_uri=settings.registry_uri,
        promotion_log=settings.promotion_log_path,
        model_name=settings.registry.model_name,
        experiment_name=settings.registry.experiment_name,
        artifact_location=settings.artifact_location,
        local_dir=settings.registry_dir if local else None,
    )


@app.command()
def promote(
    version: Annotated[int, typer.Argument(min=1, help="model version to make champion")],
    approver: Annotated[str, typer.Option(help="name of the person who approves the promotion")],
    reason: Annotated[str, typer.Option(help="why this version should score children")],
    policy: Annotated[
        Path | None,
        typer.Option(help="tier-policy file holding the pre-registered minimum (default policy)"),
    ] = None,
    json_out: Annotated[bool, typer.Option("--json", help="print one JSON object")] = False,
) -> None:
    """Make VERSION the champion that scores children.

    Refused, with nothing changed, without an approver and a reason, or when the version's
    recorded test precision at capacity is below the tier policy's pre-registered minimum.
    The approver, reason and time are kept as model-version tags and in
    $SHOUHU_HOME/mlflow/promotions.jsonl.
    """
    from models.policy import load_policy
    from shouhu.settings import get_settings

    registry = registry_from_settings(get_settings())
    record = registry.promote(version, approver=approver, reason=reason, policy=load_policy(policy))
    _emit(record.to_dict(), json_out)


__all__ = ["app", "registry_from_settings"]
