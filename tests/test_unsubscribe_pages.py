"""`/unsubscribe/<token>`: a GET only asks, the POST (a button or RFC 8058 one-click) acts, undoable."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import httpx
import pytest
from sqlmodel import select

from broadcaster.config import Settings
from broadcaster.db import SessionFactory
from broadcaster.delivery.subscribers import NewSubscriber
from broadcaster.models import Delivery, Subscription
from broadcaster.web import create_app
from tests.conftest import make_settings
from tests.e2e.helpers import deliver, draft, live_settings, open_, subscribe
from tests.e2e.test_faults import dispatching, until
from tests.peers.smtp import SmtpPeer
from tests.served import served

ONE_CLICK = {"List-Unsubscribe": "One-Click"}


async def _subscription(sessions: SessionFactory, address: str) -> Subscription:
    async with sessions() as session:
        return (await session.exec(select(Subscription).where(Subscription.address == address))).one()


async def _token(sessions: SessionFactory, settings: Settings, address: str, locale: str = "fr") -> str:
    await subscribe(sessions, settings, [NewSubscriber(email=address, locale=locale, line=2)])
    return (await _subscription(sessions, address)).unsubscribe_token


def _forms(page: str) -> list[tuple[str, str]]:
    """(method, action) of every form of the page."""
    return re.findall(r'<form method="(\w+)" action="([^"]+)">', page)


@pytest.fixture
async def client(database_url: str) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(make_settings(database_url), dispatch=False)
    async with served(app) as c:
        yield c


async def test_opening_the_link_only_asks_in_the_subscribers_language(
    database_url: str, sessions: SessionFactory, client: httpx.AsyncClient
) -> None:
    settings = make_settings(database_url)
    token = await _token(sessions, settings, "claire@example.com", locale="en")
    for _scanner in range(3):  # a mail scanner prefetching the link, then the person
        page = await client.get(f"/unsubscribe/{token}")
        assert page.status_code == 200
    assert (await _subscription(sessions, "claire@example.com")).active  # still subscribed
    assert 'lang="en"' in page.text and "Stop receiving our incident and maintenance notices" in page.text
    assert _forms(page.text) == [("post", f"{settings.server.public_base_url}/unsubscribe/{token}")]
    assert '<button type="submit">Unsubscribe</button>' in page.text and "<script" not in page.text
    assert "c•••@example.com" in page.text and "claire@" not in page.text  # a forwarded link shows no more
    assert page.headers["Referrer-Policy"] == "no-referrer" and page.headers["Cache-Control"] == "no-store"

    french = await _token(sessions, settings, "marc@example.com", locale="fr")
    assert "Me désinscrire" in (await client.get(f"/unsubscribe/{french}")).text
    german = await _token(sessions, settings, "hans@example.com", locale="de")  # no German pages
    assert "Me désinscrire" in (await client.get(f"/unsubscribe/{german}")).text  # the brand's default


async def test_the_button_unsubscribes_and_the_done_page_subscribes_again(
    database_url: str, sessions: SessionFactory, client: httpx.AsyncClient
) -> None:
    settings = make_settings(database_url)
    token = await _token(sessions, settings, "claire@example.com")
    done = await client.post(f"/unsubscribe/{token}")
    assert done.status_code == 200 and "Désinscription effectuée" in done.text
    gone = await _subscription(sessions, "claire@example.com")
    assert not gone.active and gone.deactivated_reason == "unsubscribed" and gone.deactivated_at is not None
    assert "(heure\u00a0de\u00a0Paris)" in done.text  # when, on the brand's clock
    base = settings.server.public_base_url
    assert _forms(done.text) == [("post", f"{base}/unsubscribe/{token}/resubscribe")]
    assert "Me réabonner" in done.text
    # the link opened again later: still unsubscribed, and the offer to come back
    again = await client.get(f"/unsubscribe/{token}")
    assert "Désinscription effectuée" in again.text and _forms(again.text) == _forms(done.text)

    back = await client.post(f"/unsubscribe/{token}/resubscribe")
    assert back.status_code == 200 and "Abonnement rétabli" in back.text
    subscription = await _subscription(sessions, "claire@example.com")
    assert subscription.id == gone.id  # the same subscription, active again
    assert (
        subscription.active and subscription.deactivated_reason == "" and subscription.deactivated_at is None
    )
    assert _forms(back.text) == [("post", f"{base}/unsubscribe/{token}")]


async def test_one_click_unsubscribes_without_a_page(
    database_url: str, sessions: SessionFactory, client: httpx.AsyncClient
) -> None:
    settings = make_settings(database_url)
    token = await _token(sessions, settings, "claire@example.com")
    first = await client.post(f"/unsubscribe/{token}", data=ONE_CLICK)
    assert first.status_code == 200
    unsubscribed = await _subscription(sessions, "claire@example.com")
    assert not unsubscribed.active
    assert (await client.post(f"/unsubscribe/{token}", data=ONE_CLICK)).status_code == 200  # twice: same
    assert (await _subscription(sessions, "claire@example.com")).deactivated_at == unsubscribed.deactivated_at


@pytest.mark.parametrize("token", ["not-a-token", "x" * 65, "..%2F..%2Fstatus", "%00"])
async def test_an_unknown_link_is_a_404_page_for_get_and_post(client: httpx.AsyncClient, token: str) -> None:
    for response in (
        await client.get(f"/unsubscribe/{token}"),
        await client.post(f"/unsubscribe/{token}", data=ONE_CLICK),
        await client.post(f"/unsubscribe/{token}/resubscribe"),
    ):
        assert response.status_code == 404
        assert response.headers["content-type"].startswith("text/html")
        assert "Lien inconnu" in response.text and "Traceback" not in response.text


async def test_the_links_of_a_real_email_keep_working(database_url: str, sessions: SessionFactory) -> None:
    with SmtpPeer() as smtp:
        settings = live_settings(database_url, smtp, None)
        await subscribe(sessions, settings, [NewSubscriber(email="claire@example.com", locale="en", line=2)])
        opening = draft("investigating", "Le paiement échoue. Désolés.", "Payment fails. Sorry.")
        published = await open_(sessions, settings, opening, force=True)
        await deliver(sessions, settings, published)
        assert smtp.wait_for(1, 10)
        message = smtp.messages[0][2]
    header = str(message["List-Unsubscribe"]).strip("<>")
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    body = message.get_body(("plain",))
    assert body is not None and header in body.get_content()  # the link people click is the same one
    path = httpx.URL(header).path
    app = create_app(settings, dispatch=False)
    async with served(app) as client:
        assert "Stop receiving" in (await client.get(path)).text  # what a person (or a scanner) opens
        assert (await _subscription(sessions, "claire@example.com")).active
        assert (await client.post(path, data=ONE_CLICK)).status_code == 200  # what the mail provider sends
    assert not (await _subscription(sessions, "claire@example.com")).active


async def test_unsubscribing_while_a_retry_waits_cancels_it(
    database_url: str, sessions: SessionFactory
) -> None:
    with SmtpPeer() as smtp:
        settings = live_settings(database_url, smtp, None, backoff_base_seconds=0.2, backoff_max_seconds=0.2)
        await subscribe(sessions, settings, [NewSubscriber(email="claire@example.com", line=2)])
        await subscribe(sessions, settings, [NewSubscriber(email="paul@example.com", line=3)])
        smtp.refuse_all()  # the relay is down: both e-mails wait for a retry
        published = await open_(
            sessions, settings, draft("investigating", "Le paiement échoue.", "Payment fails.")
        )
        async with dispatching(sessions, settings):
            await until(lambda: _all_retried(sessions))
            token = (await _subscription(sessions, "claire@example.com")).unsubscribe_token
            app = create_app(settings, dispatch=False)
            async with served(app) as c:
                assert (await c.post(f"/unsubscribe/{token}")).status_code == 200
            smtp.recover()
            await until(lambda: _settled(sessions))
        assert published.update.id is not None
        assert [to for _, to, _ in smtp.messages] == [["paul@example.com"]]  # Claire's retry never left
        statuses = {d.target: (d.status, d.last_error) for d in await _emails(sessions)}
        assert statuses["claire@example.com"] == ("failed", "not sent: unsubscribed")
        assert statuses["paul@example.com"][0] == "sent"


async def _emails(sessions: SessionFactory) -> list[Delivery]:
    async with sessions() as session:
        return list(await session.exec(select(Delivery).where(Delivery.channel == "email")))


async def _all_retried(sessions: SessionFactory) -> bool:
    found = await _emails(sessions)
    return len(found) == 2 and all(d.status == "pending" and d.last_error for d in found)


async def _settled(sessions: SessionFactory) -> bool:
    return all(d.status in ("sent", "failed", "dead") for d in await _emails(sessions))
