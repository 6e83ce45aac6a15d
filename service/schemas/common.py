"""Shared pieces of the API schemas."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StringConstraints

from service.errors import ErrorBody

Lang = Literal["zh", "en"]
TierCode = Literal["T1", "T2", "T3", "T4"]
ChildId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.:-]{1,64}$")]
AreaCode = Annotated[str, StringConstraints(pattern=r"^[0-9]{4}([0-9]{2}([0-9]{3}([0-9]{3})?)?)?$")]


def _integral(value: Any) -> Any:
    # JSON Schema's "integer" includes 1.0 (a number with a zero fraction); strict pydantic
    # would refuse it. Strings and booleans still fail the strict check that follows.
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


#: An integer as JSON Schema defines it: 3 and 3.0, never "3", 3.5 or true.
JsonInt = Annotated[int, BeforeValidator(_integral)]


class InputModel(BaseModel):
    """Base of request bodies: unknown fields are errors, scalars are not coerced."""

    model_config = ConfigDict(extra="forbid", strict=True)


class OutputModel(BaseModel):
    """Base of response bodies."""

    model_config = ConfigDict(extra="forbid")


#: Error responses every API route declares (422 is FastAPI's own validation shape).
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorBody, "description": "malformed request"},
    401: {"model": ErrorBody, "description": "not signed in (no, unknown or expired token)"},
    403: {"model": ErrorBody, "description": "the caller's role may not do this"},
    404: {
        "model": ErrorBody,
        "description": "not found (an unknown child and a child outside the caller's area "
        "answer alike)",
    },
    503: {"model": ErrorBody, "description": "a store is busy (a job is writing it); retry"},
}


class Provenance(OutputModel):
    """Which model and policy produced a score."""

    model_name: str | None = Field(description="registered model name")
    model_version: int | None = Field(description="registered model version")
    policy_version: str = Field(description="tier-policy version")


__all__ = [
    "ERROR_RESPONSES",
    "AreaCode",
    "ChildId",
    "InputModel",
    "JsonInt",
    "Lang",
    "OutputModel",
    "Provenance",
    "TierCode",
]
