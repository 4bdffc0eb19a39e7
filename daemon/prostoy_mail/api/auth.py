"""Who is calling: the provider's admin (the token of [api] admin_token_file) or a user with a
session (POST /sessions: a bearer token, kept in the store as its SHA-256 only), and what each
may reach.

Roles, as SPEC says: the admin may do anything; an organisation's owner manages everything in
it; an employee sees what they may see and manages their personal gateway and mailbox. A
user asking about another organisation gets 404, never 403: whether it exists is not told.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from typing import Literal

from fastapi import Request

from ..store.ports import Organisation, User
from .context import ApiContext
from .problems import forbidden, not_found, unauthenticated

Role = Literal["admin", "owner", "employee"]


@dataclass(frozen=True, slots=True)
class Caller:
    role: Role
    user: User | None = None  # (the admin is no user)
    token_sha256: str = ""

    @property
    def org_id(self) -> int | None:
        return None if self.user is None else self.user.org_id


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def context_of(request: Request) -> ApiContext:
    context: ApiContext = request.app.state.context
    return context


async def caller(request: Request) -> Caller:
    """The caller of a request (a FastAPI dependency): 401 without a valid bearer token."""
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise unauthenticated("give Authorization: Bearer TOKEN (POST /api/v1/sessions gives one)")
    context = context_of(request)
    admin = context.admin_token()
    if admin is not None and hmac.compare_digest(token.encode("utf-8"), admin.encode("utf-8")):
        return Caller("admin")
    digest = token_digest(token)
    user = context.reader.session_user(digest)
    if user is None:
        raise unauthenticated("the token is not valid (expired, revoked or never given)")
    return Caller("owner" if user.is_owner else "employee", user, digest)


def organisation_for(context: ApiContext, who: Caller, slug: str, *roles: Role) -> Organisation:
    """The organisation `slug` names, when `who` may act there in one of `roles` (the admin
    always may); 404 for another organisation's (or none), 403 for the wrong role."""
    try:
        organisation = context.reader.organisation(slug)
    except Exception:  # (Invalid: no such slug)
        raise not_found(f'no organisation "{slug}"') from None
    if who.role == "admin":
        return organisation
    if who.org_id != organisation.id:
        raise not_found(f'no organisation "{slug}"')
    if who.role not in roles:
        raise forbidden(f"{who.role}s may not do this")
    return organisation


def admin_only(who: Caller) -> None:
    if who.role != "admin":
        raise forbidden("only the provider's admin may do this")
