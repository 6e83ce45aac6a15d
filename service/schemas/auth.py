"""Sign-in for API clients: username and password for a bearer token."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field

from service.schemas.common import AreaCode, InputModel, Lang, OutputModel


class TokenCreate(InputModel):
    """Credentials exchanged for a bearer token."""

    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=256)
    label: str = Field(default="api", max_length=64, description="what the token is for")


class TokenPublic(OutputModel):
    """A new bearer token (shown once; only its digest is stored)."""

    access_token: str
    token_type: Literal["bearer"] = "bearer"
    expires_at: datetime


class PrincipalPublic(OutputModel):
    """The signed-in caller."""

    username: str
    role: Literal["caseworker", "supervisor", "analyst", "admin"]
    area_code: AreaCode
    area_name: str | None
    lang: Lang


__all__ = ["PrincipalPublic", "TokenCreate", "TokenPublic"]
