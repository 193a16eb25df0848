"""Signing in to the staff side: password and TOTP (codes computed with pyotp), recovery codes,
lock-out, session expiry on an injected clock, CSRF, logging out everywhere; each in the audit log."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import httpx
import pyotp
import pytest
from fastapi import FastAPI
from sqlmodel import col, select

from broadcaster.auth.users import add_user, set_disabled, use_setup_link
from broadcaster.config import Settings
from broadcaster.db import SessionFactory
from broadcaster.models import AuditEvent, StaffSession, StaffUser
from broadcaster.web.staff_api import staff_api_router
from broadcaster.web.staff_gate import CSRF_HEADER, StaffGate
from broadcaster.web.staff_pages import LOGIN_COOKIE, staff_pages_router
from tests.conftest import make_settings
from tests.served import served

PASSWORD = "correct horse battery staple"
EMAIL = "camille@shop.example"


@dataclass
class Clock:
    now: datetime

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@pytest.fixture
def clock() -> Clock:
    return Clock(datetime(2026, 12, 6, 2, 59, 50, tzinfo=UTC))  # 3 a.m. in Paris, an outage


@pytest.fixture
def settings(database_url: str) -> Settings:
    return make_settings(database_url)


@dataclass
class Staff:
    sessions: SessionFactory
    app: FastAPI
    clock: Clock

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            transport=httpx.ASGITransport(app=self.app),
            base_url="http://127.0.0.1:8080",
            headers={"Accept-Language": "en-GB,en;q=0.8"},  # the brand speaks French first
        )


@pytest.fixture
async def staff(settings: Settings, sessions: SessionFactory, clock: Clock) -> AsyncIterator[Staff]:
    gate = StaffGate(settings, sessions, clock)
    app = FastAPI()
    app.include_router(staff_pages_router(settings, sessions, gate))
    app.include_router(staff_api_router(settings, sessions, gate))
    added = await add_user(sessions, EMAIL, "Camille", "editor", "fr")
    await use_setup_link(sessions, added.setup_secret, PASSWORD, clock())
    async with served(app):  # the app's lifespan, as a server runs it
        yield Staff(sessions, app, clock)


async def sign_in(
    client: httpx.AsyncClient, password: str = PASSWORD, code: str = "", email: str = EMAIL
) -> httpx.Response:
    form = await client.get("/login")
    assert form.status_code == 200 and form.headers["cache-control"] == "no-store"
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
    assert csrf is not None and client.cookies.get(LOGIN_COOKIE) == csrf[1]
    return await client.post(
        "/login", data={"email": email, "password": password, "code": code, "csrf_token": csrf[1]}
    )


async def enrol(client: httpx.AsyncClient, clock: Clock) -> tuple[pyotp.TOTP, list[str]]:
    page = await client.get("/account/2fa")
    assert page.status_code == 200 and "<svg" in page.text  # the QR code, drawn here
    secret = re.search(r"<code>([A-Z2-7]{32})</code>", page.text)
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert secret and csrf
    totp = pyotp.TOTP(secret[1])
    done = await client.post("/account/2fa", data={"code": totp.at(clock()), "csrf_token": csrf[1]})
    assert done.status_code == 200, done.text
    codes = re.findall(r"<code>([a-z0-9]{5}-[a-z0-9]{5})</code>", done.text)
    assert len(codes) == 10
    return totp, codes


async def audit(sessions: SessionFactory) -> list[AuditEvent]:
    async with sessions() as session:
        return list((await session.exec(select(AuditEvent).order_by(AuditEvent.id))).all())


async def test_an_editor_sets_up_totp_at_first_sign_in_then_signs_in_with_a_code(staff: Staff) -> None:
    async with staff.client() as browser:
        first = await sign_in(browser)
        assert first.status_code == 303 and first.headers["location"].endswith("/account/2fa")
        cookie = first.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Secure" not in cookie  # http here
        refused = await browser.get("/api/v1/me")
        assert refused.status_code == 403 and "second factor first" in refused.json()["detail"]
        totp, _codes = await enrol(browser, staff.clock)
        me = await browser.get("/api/v1/me")
        assert me.status_code == 200 and me.json()["role"] == "editor" and me.json()["two_factor"] is True

    staff.clock.advance(seconds=30)
    async with staff.client() as browser:
        assert (await sign_in(browser)).status_code == 401  # the password alone no longer does
        signed = await sign_in(browser, code=totp.at(staff.clock()))
        assert signed.status_code == 303 and signed.headers["location"].endswith("/console")
        assert (await browser.get("/api/v1/me")).json()["acting_as"] == f"user:{EMAIL}"
    async with staff.client() as thief:  # the same code, seen over a shoulder, works once
        replayed = await sign_in(thief, code=totp.at(staff.clock()))
        assert replayed.status_code == 401 and "wrong e-mail, password or code" in replayed.text

    events = await audit(staff.sessions)
    assert [e.action for e in events if e.action.startswith(("login", "user."))] == [
        "user.add", "user.set_password", "login", "user.enrol_2fa", "login.failed", "login", "login.failed",
    ]  # fmt: skip
    for event in events:
        assert PASSWORD not in event.summary and totp.secret not in event.summary


async def test_a_recovery_code_signs_in_once(staff: Staff) -> None:
    async with staff.client() as browser:
        await sign_in(browser)
        _totp, codes = await enrol(browser, staff.clock)
    async with staff.client() as browser:
        assert (await sign_in(browser, code=codes[3].upper())).status_code == 303
    async with staff.client() as browser:
        assert (await sign_in(browser, code=codes[3])).status_code == 401
    (login,) = [e for e in await audit(staff.sessions) if e.action == "login" and "recovery" in e.summary]
    assert codes[3] not in login.summary


async def test_failures_lock_the_account_and_the_lock_out_says_the_same_for_unknown_addresses(
    staff: Staff,
) -> None:
    async with staff.client() as browser:
        for _ in range(5):
            assert (await sign_in(browser, password="wrong password 123")).status_code == 401
            assert (await sign_in(browser, email="nobody@shop.example")).status_code == 401
        locked = await sign_in(browser)  # the right password, too late
        unknown = await sign_in(browser, email="nobody@shop.example")
        assert locked.status_code == unknown.status_code == 401
        assert "too many failed attempts" in locked.text and "too many failed attempts" in unknown.text
        assert [e.action for e in await audit(staff.sessions)].count("login.locked") == 2
        assert (await browser.get("/api/v1/me")).status_code == 401
        staff.clock.advance(minutes=16)
        assert (await sign_in(browser)).status_code == 303


async def test_the_address_is_locked_after_its_own_limit_whatever_the_e_mail(
    settings: Settings, sessions: SessionFactory, staff: Staff
) -> None:
    async with staff.client() as browser:
        for n in range(20):  # twenty e-mails, once each: no account reaches its own limit
            assert (await sign_in(browser, email=f"guess{n}@shop.example")).status_code == 401
        assert "too many failed attempts" in (await sign_in(browser)).text


async def test_a_session_ends_when_idle_or_too_old_and_a_disabled_user_is_out_at_once(
    staff: Staff, sessions: SessionFactory
) -> None:
    async with staff.client() as browser:
        await sign_in(browser)
        await enrol(browser, staff.clock)
        staff.clock.advance(minutes=119)
        assert (await browser.get("/api/v1/me")).status_code == 200
        staff.clock.advance(minutes=119)
        assert (await browser.get("/api/v1/me")).status_code == 200  # active: the idle clock restarted
        staff.clock.advance(minutes=122)
        assert (await browser.get("/api/v1/me")).status_code == 401  # idle for more than two hours

    staff.clock.advance(seconds=30)
    async with staff.client() as browser:
        async with sessions() as session:
            user = (await session.exec(select(StaffUser))).one()
        assert user.totp_secret is not None
        code = pyotp.TOTP(user.totp_secret).at(staff.clock())
        assert (await sign_in(browser, code=code)).status_code == 303
        for _ in range(24):
            staff.clock.advance(minutes=59)
            assert (await browser.get("/api/v1/me")).status_code == 200  # up to 23 h 36 min in
        staff.clock.advance(minutes=59)
        assert (await browser.get("/api/v1/me")).status_code == 401  # past 24 h the session is over

    async with staff.client() as browser:
        staff.clock.advance(seconds=30)
        assert (
            await sign_in(browser, code=pyotp.TOTP(user.totp_secret).at(staff.clock()))
        ).status_code == 303
        await set_disabled(sessions, EMAIL, True)
        assert (await browser.get("/api/v1/me")).status_code == 401


async def test_a_change_without_the_sessions_csrf_token_is_refused(staff: Staff) -> None:
    async with staff.client() as browser:
        admin = await add_user(staff.sessions, "ana@shop.example", "Ana", "admin", "en")
        await use_setup_link(staff.sessions, admin.setup_secret, PASSWORD, staff.clock())
        await sign_in(browser, email="ana@shop.example")
        await enrol(browser, staff.clock)
        body = {"email": "lea@shop.example", "role": "agent"}
        assert (await browser.post("/api/v1/users", json=body)).status_code == 403
        assert (
            await browser.post("/api/v1/users", json=body, headers={CSRF_HEADER: "guess"})
        ).status_code == 403
        async with staff.sessions() as session:
            csrf = (
                await session.exec(
                    select(StaffSession.csrf_token).where(col(StaffSession.ended_at).is_(None))
                )
            ).one()
        created = await browser.post("/api/v1/users", json=body, headers={CSRF_HEADER: csrf})
        assert created.status_code == 201 and "/setup/" in created.json()["setup_url"]
        page = await browser.get("/account")
        assert (await browser.post("/logout", data={"csrf_token": "guess"})).status_code == 403
        assert (await browser.get("/api/v1/me")).status_code == 200
        assert csrf in page.text


async def test_logging_out_everywhere_ends_the_other_browsers_sessions(staff: Staff) -> None:
    async with staff.client() as phone, staff.client() as laptop:
        await sign_in(phone)
        totp, _codes = await enrol(phone, staff.clock)
        staff.clock.advance(seconds=30)
        await sign_in(laptop, code=totp.at(staff.clock()))
        assert (await laptop.get("/api/v1/me")).status_code == 200
        page = await phone.get("/account")
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
        assert csrf is not None
        out = await phone.post("/logout/everywhere", data={"csrf_token": csrf[1]})
        assert out.status_code == 303
        assert (await laptop.get("/api/v1/me")).status_code == 401
        assert (await phone.get("/api/v1/me")).status_code == 401
    assert "logout.everywhere" in [e.action for e in await audit(staff.sessions)]


async def test_a_set_up_link_works_once_and_refuses_a_short_password(
    settings: Settings, sessions: SessionFactory, staff: Staff
) -> None:
    added = await add_user(sessions, "lea@shop.example", "Léa", "agent", "fr")
    async with staff.client() as browser:
        short = await browser.post(
            f"/setup/{added.setup_secret}", data={"password": "short", "again": "short"}
        )
        assert short.status_code == 400 and "12" in short.text
        done = await browser.post(
            f"/setup/{added.setup_secret}", data={"password": PASSWORD, "again": PASSWORD}
        )
        assert done.status_code == 303
        again = await browser.post(
            f"/setup/{added.setup_secret}", data={"password": PASSWORD, "again": PASSWORD}
        )
        assert again.status_code == 400 and "expired" in again.text
        assert (
            await sign_in(browser, email="lea@shop.example")
        ).status_code == 303  # an agent: no 2FA needed


async def test_the_session_cookie_is_secure_behind_https(
    database_url: str, sessions: SessionFactory, clock: Clock
) -> None:
    settings = make_settings(database_url, server={"public_base_url": "https://status.shop.example"})
    gate = StaffGate(settings, sessions, clock)
    app = FastAPI()
    app.include_router(staff_pages_router(settings, sessions, gate))
    added = await add_user(sessions, "lea@shop.example", "Léa", "agent", "fr")
    await use_setup_link(sessions, added.setup_secret, PASSWORD, clock())
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="https://status.shop.example"
    ) as browser:
        signed = await sign_in(browser, email="lea@shop.example")
    assert signed.status_code == 303 and signed.headers["location"] == "https://status.shop.example/console"
    assert "Secure" in signed.headers["set-cookie"] and "HttpOnly" in signed.headers["set-cookie"]
