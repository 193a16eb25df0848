"""Staff users and their API tokens for tests, made by the product's own functions."""

from __future__ import annotations

from broadcaster.auth.tokens import create_token
from broadcaster.auth.users import add_user
from broadcaster.db import SessionFactory


async def staff_token(sessions: SessionFactory, role: str = "admin", email: str | None = None) -> str:
    """A new user of `role` and a token of theirs with their whole role; the token's text."""
    email = email or f"{role}@shop.example"
    await add_user(sessions, email, role.title(), role, "en")
    return (await create_token(sessions, email, f"{role} tests")).plaintext


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
