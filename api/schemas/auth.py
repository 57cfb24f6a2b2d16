"""Logging in, the caller, users and API keys."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, StringConstraints

from api.schemas.common import DbId, In, Name, Out, no_control
from api.security import MAX_PASSWORD_LEN, MIN_PASSWORD_LEN, normalise_email

Role = Literal["admin", "coordinator", "carer"]
KeyRole = Literal["admin", "coordinator"]  # a key acts for the organisation, not for a carer
Email = Annotated[str, StringConstraints(strip_whitespace=True, min_length=3, max_length=254,
                                         pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$"),
                  AfterValidator(no_control), AfterValidator(normalise_email)]
Password = Annotated[str, StringConstraints(min_length=MIN_PASSWORD_LEN, max_length=MAX_PASSWORD_LEN),
                     AfterValidator(no_control)]


class TokenOut(Out):
    access_token: str
    token_type: Literal["bearer"] = "bearer"
    expires_in: int = Field(description="seconds until the token expires")


class MeOut(Out):
    user_id: int | None
    api_key_id: int | None
    organisation_id: int
    organisation_name: str
    role: Role
    recipient_id: int | None
    name: str


class PasswordChange(In):
    current_password: str = Field(max_length=MAX_PASSWORD_LEN)
    new_password: Password


class UserIn(In):
    email: Email
    name: Name
    role: Role
    password: Password
    recipient_id: DbId | None = Field(None, description="the recipient this person is, for a carer")


class UserUpdate(In):
    name: Name | None = None
    role: Role | None = None
    recipient_id: DbId | None = None
    active: bool | None = None
    password: Password | None = None


class UserOut(Out):
    id: int
    email: str
    name: str
    role: Role
    recipient_id: int | None
    active: bool
    created_at: datetime


class ApiKeyIn(In):
    name: Name
    role: KeyRole = "coordinator"


class ApiKeyOut(Out):
    id: int
    name: str
    role: str
    prefix: str
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


class ApiKeyCreated(ApiKeyOut):
    key: str = Field(description="the key itself: shown once, store it now")
