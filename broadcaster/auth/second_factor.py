"""The second factor: TOTP (RFC 6238, pyotp) enrolled by a QR code, and ten single-use recovery codes."""

from __future__ import annotations

import io
import secrets
from dataclasses import dataclass
from datetime import datetime

import pyotp
import segno
from sqlmodel import col, delete, select
from sqlmodel.ext.asyncio.session import AsyncSession

from broadcaster.auth.audit import record
from broadcaster.auth.hashing import digest
from broadcaster.db import SessionFactory
from broadcaster.errors import InvalidInput, NotFound
from broadcaster.models import RecoveryCode, StaffUser, utcnow

__all__ = ["RECOVERY_CODES", "Enrolment", "begin_enrolment", "check_second_factor", "confirm_enrolment"]

RECOVERY_CODES = 10
_PERIOD = 30  # seconds per code, what every authenticator app expects


@dataclass(frozen=True, slots=True)
class Enrolment:
    """What the enrolment page shows: the QR code (SVG) and the key to type when there is no camera."""

    secret: str
    uri: str
    qr_svg: str

    def __repr__(self) -> str:
        return "Enrolment(…)"


def _qr_svg(uri: str) -> str:
    out = io.BytesIO()
    segno.make(uri, error="m").save(out, kind="svg", scale=5, xmldecl=False, svgns=True, title="TOTP")
    return out.getvalue().decode()


async def _user(session: AsyncSession, user_id: int) -> StaffUser:
    user = await session.get(StaffUser, user_id)
    if user is None:
        raise NotFound(f"no staff user {user_id}")
    return user


async def begin_enrolment(sessions: SessionFactory, user_id: int, issuer: str) -> Enrolment:
    """A new key for the user, pending until a code from it is confirmed (a new one each call)."""
    async with sessions() as session, session.begin():
        user = await _user(session, user_id)
        if user.totp_enrolled_at is not None:
            raise InvalidInput("a second factor is already set up: an admin can reset it (users reset-2fa)")
        user.totp_secret = pyotp.random_base32()
    uri = pyotp.TOTP(user.totp_secret).provisioning_uri(name=user.email, issuer_name=issuer)
    return Enrolment(user.totp_secret, uri, _qr_svg(uri))


def _step_of(totp: pyotp.TOTP, code: str, now: datetime) -> int | None:
    """The time step `code` belongs to, within one step of `now` (clock drift), or None."""
    step = int(now.timestamp()) // _PERIOD
    for candidate in (step, step - 1, step + 1):
        if secrets.compare_digest(totp.at(candidate * _PERIOD), code):
            return candidate
    return None


def _accept_code(user: StaffUser, code: str, now: datetime) -> bool:
    """A code of the user's key not used before (a code seen once is refused: no replay)."""
    code = "".join(code.split())
    if user.totp_secret is None or not (code.isdigit() and len(code) == 6):
        return False
    step = _step_of(pyotp.TOTP(user.totp_secret), code, now)
    if step is None or step <= user.totp_last_step:
        return False
    user.totp_last_step = step
    return True


def _new_recovery_codes() -> list[str]:
    alphabet = "abcdefghjkmnpqrstuvwxyz23456789"  # no 0/o, 1/l/i to misread
    return [
        "-".join("".join(secrets.choice(alphabet) for _ in range(5)) for _ in range(2))
        for _ in range(RECOVERY_CODES)
    ]


async def confirm_enrolment(sessions: SessionFactory, user_id: int, code: str, now: datetime) -> list[str]:
    """Turns the pending key on when `code` is right; returns the recovery codes, shown this once."""
    async with sessions() as session, session.begin():
        user = await _user(session, user_id)
        if user.totp_enrolled_at is not None or user.totp_secret is None:
            raise InvalidInput("there is no second factor waiting for confirmation: start again")
        if not _accept_code(user, code, now):
            raise InvalidInput("code: this is not the code the app shows now; type the current one")
        user.totp_enrolled_at = now
        codes = _new_recovery_codes()
        await session.exec(delete(RecoveryCode).where(col(RecoveryCode.user_id) == user_id))
        for plain in codes:
            session.add(RecoveryCode(user_id=user_id, code_hash=digest(plain)))
        record(session, "user.enrol_2fa", f"user:{user.email}", "authenticator app set up")
    return codes


async def check_second_factor(session: AsyncSession, user: StaffUser, code: str, now: datetime) -> str | None:
    """How `code` passed ("totp" or "recovery code"), or None; a recovery code is then used up."""
    if _accept_code(user, code, now):
        return "totp"
    typed = "".join(code.lower().split())
    if len(typed) != 11 or typed[5] != "-":
        return None
    found = (
        await session.exec(
            select(RecoveryCode).where(
                RecoveryCode.user_id == user.id,
                RecoveryCode.code_hash == digest(typed),
                col(RecoveryCode.used_at).is_(None),
            )
        )
    ).first()
    if found is None:
        return None
    found.used_at = utcnow()
    session.add(found)
    return "recovery code"
