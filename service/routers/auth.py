"""``/api/v1/auth``: exchange a username and password for a bearer token; who am I."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Response
from fastapi.security import HTTPAuthorizationCredentials

from service.auth.sessions import authenticate
from service.auth.tokens import issue_token, revoke_token
from service.deps import PrincipalDep, SessionDep, StateDep, bearer_scheme
from service.schemas.auth import PrincipalPublic, TokenCreate, TokenPublic
from service.schemas.common import ERROR_RESPONSES
from shouhu.errors import AuthenticationError

router = APIRouter(prefix="/auth", tags=["auth"], responses=ERROR_RESPONSES)


@router.post("/token", name="create_token", response_model=TokenPublic, status_code=201)
def create_token(body: TokenCreate, state: StateDep, session: SessionDep) -> TokenPublic:
    """A bearer token for the API (valid ``service.token_days`` days; shown once)."""
    user = authenticate(session, body.username, body.password)
    if user is None:
        raise AuthenticationError("wrong username or password")
    token, row = issue_token(
        session, user, days=state.settings.service.token_days, label=body.label
    )
    session.commit()
    return TokenPublic(access_token=token, expires_at=row.expires_at)


@router.delete("/token", name="revoke_token", status_code=204, response_class=Response)
def revoke_current_token(
    principal: PrincipalDep,
    session: SessionDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)],
) -> Response:
    """Revoke the token this request carries (sign out)."""
    if credentials is not None:
        revoke_token(session, credentials.credentials)
        session.commit()
    return Response(status_code=204)


@router.get("/me", name="get_me", response_model=PrincipalPublic)
def get_me(principal: PrincipalDep, state: StateDep) -> PrincipalPublic:
    """The signed-in caller: role, area and language."""
    return PrincipalPublic(
        username=principal.username,
        role=principal.role.value,
        area_code=principal.area_code,
        area_name=state.snapshot.areas.name(principal.area_code),
        lang=principal.lang,
    )
