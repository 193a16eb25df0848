"""Hashes of what the staff type (Argon2id) and of the random secrets we hand out (SHA-256)."""

from __future__ import annotations

import hashlib
import hmac
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

__all__ = ["MIN_PASSWORD", "check_password", "digest", "hash_password", "new_secret", "same_digest"]

MIN_PASSWORD = 12

_HASHER = PasswordHasher()  # Argon2id with the library's (RFC 9106 low-memory) parameters
#: Verified when the e-mail is unknown, so a wrong address costs the same time as a wrong password.
_NOBODY = _HASHER.hash(secrets.token_urlsafe(16))


def hash_password(password: str) -> str:
    if len(password) < MIN_PASSWORD:
        raise ValueError(f"a password needs at least {MIN_PASSWORD} characters")
    return _HASHER.hash(password)


def check_password(stored: str | None, given: str) -> bool:
    """Whether `given` matches `stored` (None: no password set, checked against a dummy all the same)."""
    try:
        return _HASHER.verify(stored or _NOBODY, given) and stored is not None
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def new_secret(nbytes: int = 32) -> str:
    return secrets.token_urlsafe(nbytes)


def digest(secret: str) -> str:
    """SHA-256 hex: enough for secrets of 128 bits or more, which nobody guesses one at a time."""
    return hashlib.sha256(secret.encode()).hexdigest()


def same_digest(stored: str, secret: str) -> bool:
    return hmac.compare_digest(stored, digest(secret))
