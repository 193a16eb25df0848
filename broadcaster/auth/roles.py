"""Roles as data: one table says what each role may do; every staff route names the permission it needs."""

from __future__ import annotations

from enum import StrEnum

__all__ = ["ROLES", "Permission", "check_role", "permissions_of", "within"]


class Permission(StrEnum):
    INCIDENTS_READ = "incidents:read"  # incidents, deliveries, the schedule, captured messages, metrics
    INCIDENTS_WRITE = "incidents:write"  # open, update, resolve, maintenance, postmortems, requeue
    INBOX_READ = "inbox:read"  # what customers wrote
    INBOX_WRITE = "inbox:write"  # reply, assign, label, close
    SUBSCRIBERS_READ = "subscribers:read"
    SUBSCRIBERS_WRITE = "subscribers:write"  # add, import, delete (the GDPR erase)
    AUDIT_READ = "audit:read"
    USERS_MANAGE = "users:manage"  # users, roles, everybody's tokens, second-factor resets


_EDITOR = frozenset(
    {
        Permission.INCIDENTS_READ,
        Permission.INCIDENTS_WRITE,
        Permission.INBOX_READ,
        Permission.INBOX_WRITE,
        Permission.SUBSCRIBERS_READ,
        Permission.SUBSCRIBERS_WRITE,
    }
)

#: What each role may do, from the most to the least: a role never reaches past the one above it.
ROLES: dict[str, frozenset[Permission]] = {
    "admin": frozenset(Permission),
    "editor": _EDITOR,
    "agent": frozenset({Permission.INCIDENTS_READ, Permission.INBOX_READ, Permission.INBOX_WRITE}),
    "viewer": frozenset({Permission.INCIDENTS_READ}),
}


def check_role(role: str) -> str:
    """The role, or a `ValueError` that lists the roles there are."""
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}: expected one of {', '.join(ROLES)}")
    return role


def permissions_of(role: str) -> frozenset[Permission]:
    return ROLES.get(role, frozenset())


def within(role: str, ceiling: str) -> bool:
    """Whether `role` may do nothing that `ceiling` may not (a token's scope and its owner's role)."""
    return permissions_of(role) <= permissions_of(ceiling)
