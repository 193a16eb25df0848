"""BlogChannel: WordPress against a fake REST API over real HTTP, and a Markdown folder on disk."""

from __future__ import annotations

import json
import os
import re
import socket
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from markdown_it import MarkdownIt
from pydantic import SecretStr

from broadcaster.compose.render import Composer
from broadcaster.message import RenderedMessage
from channels.base import Channel, RateLimited, Rejected, Target, Unauthorized, Unavailable
from channels.blog.adapter import BlogChannel
from channels.blog.entry import status_words
from channels.blog.settings import BlogSettings
from tests.peers.wordpress import WordPressPeer
from tests.test_compose import make_context

GOLDEN = Path(__file__).parent.parent / "golden" / "blog"
PAYLOADS = Path(__file__).parent.parent / "payloads" / "blog"
PASSWORD = "abcd EFGH 1234 ijkl MNOP 5678"
START = datetime(2026, 11, 14, 12, 5, tzinfo=UTC)


def golden(locale: str, kind: str) -> RenderedMessage:
    """A real rendition: the golden file's title, Markdown part and HTML."""
    text = (GOLDEN / locale / f"{kind}.txt").read_text(encoding="utf-8")
    head, rest = text.split("----- part 1 -----\n", 1)
    markdown, html = rest.split("----- html -----\n", 1)
    title = re.search(r"^title: (.*)$", head, re.M)
    assert title is not None
    return RenderedMessage("blog", locale, kind, (markdown.strip(),), title=title.group(1), html=html.strip())


def titled(title: str, status: str) -> RenderedMessage:
    markdown = f"**Statut : {status}** · Paiement\n\n## En pratique\n\nMerci de votre patience."
    html = f"<p><strong>Statut : {status}</strong> · Paiement</p>\n<h2>En pratique</h2>\n<p>Merci.</p>"
    return RenderedMessage("blog", "fr", "update", (markdown,), title=title, html=html)


class Clock:
    """Each call is ten minutes after the previous one."""

    def __init__(self) -> None:
        self.now = START - timedelta(minutes=10)

    def __call__(self) -> datetime:
        self.now += timedelta(minutes=10)
        return self.now


THREE = [golden("fr", "update"), titled("Paiement indisponible", "Surveillance"), golden("fr", "resolved")]


async def publish_three(channel: BlogChannel) -> list[str]:
    refs, ref = [], ""
    for n, message in enumerate(THREE, start=41):
        ref = (
            await channel.send(
                message, Target("incidents", thread_ref=ref), idempotency_key=f"{n}:blog:incidents"
            )
        ).provider_message_id
        refs.append(ref)
    return refs


def test_status_words_from_the_goldens() -> None:
    assert status_words(golden("fr", "update").parts[0]) == "Cause identifiée"
    assert status_words(golden("en", "resolved").parts[0]) == "Resolved"
    assert status_words("Plain first line\n\nmore") == "Plain first line"


# ----- WordPress ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def running_peer() -> Iterator[WordPressPeer]:
    with WordPressPeer(user="comms", app_password=PASSWORD) as running:
        yield running


@pytest.fixture
def peer(running_peer: WordPressPeer) -> WordPressPeer:
    running_peer.reset()
    return running_peer


def wp_settings(url: str, password: str = PASSWORD, **extra: Any) -> BlogSettings:
    return BlogSettings(
        publisher="wordpress",
        wordpress_url=url + "/",
        wordpress_user="comms",
        wordpress_app_password=SecretStr(password),
        timeout_seconds=5.0,
        **extra,
    )


@pytest.fixture
async def wordpress(peer: WordPressPeer) -> AsyncIterator[BlogChannel]:
    channel = BlogChannel(wp_settings(peer.base_url), clock=Clock())
    yield channel
    await channel.aclose()


async def test_three_updates_make_one_post_newest_first(peer: WordPressPeer, wordpress: BlogChannel) -> None:
    assert isinstance(wordpress, Channel)
    refs = await publish_three(wordpress)

    assert len(set(refs)) == 1 and peer.creates() == 1
    post = peer.posts[int(refs[0])]
    assert post["title"] == "Résolu : Paiement indisponible" and post["status"] == "publish"
    keys = re.findall(r'<section class="incident-update" data-update="([^"]+)"', post["content"])
    assert keys == ["43:blog:incidents", "42:blog:incidents", "41:blog:incidents"]
    assert "<h2>2026-11-14 12:25 UTC — Résolu</h2>" in post["content"]
    assert "<h2>2026-11-14 12:05 UTC — Cause identifiée</h2>" in post["content"]
    assert "<h3>En pratique</h3>" in post["content"]  # the update's own headings sit one level down


async def test_retries_never_duplicate(peer: WordPressPeer, wordpress: BlogChannel) -> None:
    first = await wordpress.send(THREE[0], Target("incidents"), idempotency_key="41:blog:incidents")
    again = await wordpress.send(THREE[0], Target("incidents"), idempotency_key="41:blog:incidents")
    target = Target("incidents", thread_ref=first.provider_message_id)
    for _ in range(2):
        await wordpress.send(THREE[1], target, idempotency_key="42:blog:incidents")

    assert again.provider_message_id == first.provider_message_id and peer.creates() == 1
    content = peer.posts[int(first.provider_message_id)]["content"]
    assert content.count('data-update="42:blog:incidents"') == 1
    assert content.count('data-update="41:blog:incidents"') == 1


@pytest.mark.parametrize("configured", [PASSWORD, PASSWORD.replace(" ", "")])
async def test_application_password_with_or_without_spaces(peer: WordPressPeer, configured: str) -> None:
    channel = BlogChannel(wp_settings(peer.base_url, configured))
    try:
        result = await channel.send(THREE[0], Target("incidents"), idempotency_key="1:blog:incidents")
    finally:
        await channel.aclose()
    assert int(result.provider_message_id) in peer.posts


async def test_wrong_password_is_unauthorized_without_the_password(peer: WordPressPeer) -> None:
    wrong = "wxyz WXYZ 9999 wxyz WXYZ 9999"
    channel = BlogChannel(wp_settings(peer.base_url, wrong))
    try:
        with pytest.raises(Unauthorized) as caught:
            await channel.send(THREE[0], Target("incidents"), idempotency_key="1:blog:incidents")
        checked = await channel.check()
    finally:
        await channel.aclose()

    assert (
        "refused the application password" in caught.value.reason
        and "incorrect_password" in caught.value.reason
    )
    assert not checked.ok and "Application Passwords" in checked.fix
    for text in (caught.value.reason, str(caught.value), checked.detail, checked.fix, repr(channel)):
        assert wrong not in text and wrong.replace(" ", "") not in text and PASSWORD not in text
    assert not peer.posts


async def test_deleted_or_trashed_post_starts_a_new_one(peer: WordPressPeer, wordpress: BlogChannel) -> None:
    first = await wordpress.send(THREE[0], Target("incidents"), idempotency_key="41:blog:incidents")
    peer.delete(first.provider_message_id)
    second = await wordpress.send(
        THREE[1],
        Target("incidents", thread_ref=first.provider_message_id),
        idempotency_key="42:blog:incidents",
    )
    peer.trash(second.provider_message_id)
    third = await wordpress.send(
        THREE[2],
        Target("incidents", thread_ref=second.provider_message_id),
        idempotency_key="43:blog:incidents",
    )

    assert len({first.provider_message_id, second.provider_message_id, third.provider_message_id}) == 3
    assert 'data-update="43:blog:incidents"' in peer.posts[int(third.provider_message_id)]["content"]


async def test_rate_limit_down_and_refusal(peer: WordPressPeer, wordpress: BlogChannel) -> None:
    peer.rate_limit_next(1, retry_after="7")
    with pytest.raises(RateLimited) as limited:
        await wordpress.send(THREE[0], Target("incidents"), idempotency_key="41:blog:incidents")
    assert limited.value.retry_after == 7.0

    peer.down = True
    with pytest.raises(Unavailable, match="502"):
        await wordpress.send(THREE[0], Target("incidents"), idempotency_key="41:blog:incidents")
    peer.down = False

    peer.fail_next(400, "rest_invalid_param", "Invalid parameter(s): content")
    with pytest.raises(Rejected, match=r"Invalid parameter\(s\): content"):
        await wordpress.send(THREE[0], Target("incidents"), idempotency_key="41:blog:incidents")

    peer.rate_limit_next(1, retry_after="Wed, 21 Oct 2015 07:28:00 GMT")  # an HTTP date, past
    with pytest.raises(RateLimited) as limited:
        await wordpress.send(THREE[0], Target("incidents"), idempotency_key="41:blog:incidents")
    assert limited.value.retry_after == 0.0

    peer.can_publish = False
    with pytest.raises(Unauthorized, match="rest_cannot_publish"):
        await wordpress.send(THREE[0], Target("incidents"), idempotency_key="41:blog:incidents")
    peer.can_publish = True

    ok = await wordpress.send(THREE[0], Target("incidents"), idempotency_key="41:blog:incidents")
    assert int(ok.provider_message_id) in peer.posts


async def test_unreachable_site_is_unavailable() -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    channel = BlogChannel(wp_settings(f"http://127.0.0.1:{port}"))
    try:
        with pytest.raises(Unavailable, match="unreachable"):
            await channel.send(THREE[0], Target("incidents"), idempotency_key="1:blog:incidents")
        checked = await channel.check()
    finally:
        await channel.aclose()
    assert not checked.ok and "wordpress_url" in checked.fix


async def test_check(peer: WordPressPeer, wordpress: BlogChannel) -> None:
    assert (await wordpress.check()).detail == "ok: WordPress user Équipe Communication can publish"

    peer.can_publish = False
    refused = await wordpress.check()
    assert not refused.ok and "publish_posts" in refused.detail and "Author" in refused.fix

    drafts = BlogChannel(wp_settings(peer.base_url, wordpress_status="draft"))
    try:
        assert (await drafts.check()).ok
    finally:
        await drafts.aclose()


async def test_missing_wordpress_config() -> None:
    channel = BlogChannel(BlogSettings(publisher="wordpress", wordpress_url="http://127.0.0.1:9"))
    with pytest.raises(Unauthorized, match="wordpress_app_password"):
        await channel.send(THREE[0], Target("incidents"), idempotency_key="1:blog:incidents")
    assert not (await channel.check()).ok


def test_peer_shapes_match_recorded_wordpress_payloads(peer: WordPressPeer) -> None:
    """The fields the publisher reads exist in real WordPress answers and in the peer's."""
    post = json.loads((PAYLOADS / "wordpress_post_edit.json").read_text(encoding="utf-8"))
    me = json.loads((PAYLOADS / "wordpress_users_me_edit.json").read_text(encoding="utf-8"))
    assert isinstance(post["id"], int) and isinstance(post["content"]["raw"], str) and post["status"]
    assert me["name"] and me["capabilities"]["publish_posts"] is True
    for name in ("incorrect_password", "rest_cannot_create", "invalid_post_id"):
        error = json.loads((PAYLOADS / f"wordpress_error_{name}.json").read_text(encoding="utf-8"))
        assert set(error) == {"code", "message", "data"} and isinstance(error["data"]["status"], int)

    from tests.peers.wordpress import _shape

    shaped = _shape(
        {
            "id": 1,
            "date": "d",
            "modified": "m",
            "status": "publish",
            "title": "t",
            "content": "c",
            "link": "l",
        },
        edit=True,
    )
    assert set(shaped) <= set(post)
    assert set(shaped["content"]) <= set(post["content"]) and set(shaped["title"]) <= set(post["title"])


# ----- Markdown folder ---------------------------------------------------------------------------


def md_channel(folder: Path | str) -> BlogChannel:
    return BlogChannel(BlogSettings(publisher="markdown", markdown_dir=str(folder)), clock=Clock())


def parse(document: str) -> tuple[dict[str, Any], str]:
    """Front matter as written (`key: json-value` lines between `---`) and the body."""
    assert document.startswith("---\n")
    head, body = document[4:].split("\n---\n", 1)
    return {k: json.loads(v) for k, v in (line.split(": ", 1) for line in head.splitlines())}, body


async def test_markdown_three_updates_one_file(tmp_path: Path) -> None:
    refs = await publish_three(md_channel(tmp_path))

    assert len(set(refs)) == 1 and [p.name for p in tmp_path.iterdir()] == [refs[0]]
    assert re.fullmatch(r"2026-11-14-paiement-indisponible-[0-9a-f]{6}\.md", refs[0])
    meta, body = parse((tmp_path / refs[0]).read_text(encoding="utf-8"))
    assert meta == {
        "title": "Résolu : Paiement indisponible",
        "date": "2026-11-14T12:05:00+00:00",
        "lastmod": "2026-11-14T12:25:00+00:00",
        "draft": False,
        "status": "Résolu",
        "tags": ["incident"],
    }
    assert re.findall(r"<!-- update: (\S+) -->", body) == [f"{n}:blog:incidents" for n in (43, 42, 41)]
    assert re.findall(r"^## (.+)$", body, re.M) == [
        "2026-11-14 12:25 UTC — Résolu",
        "2026-11-14 12:15 UTC — Surveillance",
        "2026-11-14 12:05 UTC — Cause identifiée",
    ]
    assert "### En pratique" in body  # the update's own headings sit one level down
    assert datetime.fromisoformat(meta["date"]).utcoffset() == timedelta(0)


async def test_markdown_retries_and_hand_edits(tmp_path: Path) -> None:
    channel = md_channel(tmp_path)
    first = await channel.send(THREE[0], Target("incidents"), idempotency_key="41:blog:incidents")
    assert (await channel.send(THREE[0], Target("incidents"), idempotency_key="41:blog:incidents")) == first
    path = tmp_path / first.provider_message_id
    edited = path.read_text(encoding="utf-8").replace("draft: false", "draft: false\nweight: 3")
    path.write_bytes(edited.replace("\n", "\r\n").encode("utf-8"))  # saved by a Windows editor
    target = Target("incidents", thread_ref=first.provider_message_id)
    for _ in range(2):
        await channel.send(THREE[1], target, idempotency_key="42:blog:incidents")

    document = path.read_text(encoding="utf-8")
    assert document.count("<!-- update: 42:blog:incidents -->") == 1
    assert document.count("<!-- update: 41:blog:incidents -->") == 1
    assert parse(document)[0]["weight"] == 3  # keys we do not manage are kept
    assert sorted(p.name for p in tmp_path.iterdir()) == [first.provider_message_id]  # no temp file left


async def test_markdown_title_with_colon_and_quotes(tmp_path: Path) -> None:
    title = 'Paiement : "carte" refusée\\ — 100 % réglé'
    channel = md_channel(tmp_path)
    first = await channel.send(
        titled(title, "Enquête"), Target("incidents"), idempotency_key="7:blog:incidents"
    )
    meta, _ = parse((tmp_path / first.provider_message_id).read_text(encoding="utf-8"))
    assert meta["title"] == title and first.provider_message_id.startswith(
        "2026-11-14-paiement-carte-refusee-"
    )

    later = 'Résolu : "carte" OK'
    await channel.send(
        titled(later, "Résolu"),
        Target("incidents", thread_ref=first.provider_message_id),
        idempotency_key="8:x",
    )
    meta, _ = parse((tmp_path / first.provider_message_id).read_text(encoding="utf-8"))
    assert (meta["title"], meta["status"]) == (later, "Résolu")


async def test_markdown_deleted_file_and_foreign_thread_ref_start_a_new_file(tmp_path: Path) -> None:
    channel = md_channel(tmp_path)
    first = await channel.send(THREE[0], Target("incidents"), idempotency_key="41:blog:incidents")
    (tmp_path / first.provider_message_id).unlink()
    second = await channel.send(
        THREE[1],
        Target("incidents", thread_ref=first.provider_message_id),
        idempotency_key="42:blog:incidents",
    )
    third = await channel.send(
        THREE[2], Target("incidents", thread_ref="../etc/passwd"), idempotency_key="43:blog:incidents"
    )
    assert len({first.provider_message_id, second.provider_message_id, third.provider_message_id}) == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [second.provider_message_id, third.provider_message_id]
    )


async def test_markdown_missing_folder(tmp_path: Path) -> None:
    channel = md_channel(tmp_path / "nope")
    with pytest.raises(Unauthorized, match="cannot write to blog.markdown_dir"):
        await channel.send(THREE[0], Target("incidents"), idempotency_key="1:blog:incidents")
    checked = await channel.check()
    assert not checked.ok and "no such folder" in checked.detail and checked.fix
    assert (await md_channel(tmp_path).check()).ok
    assert not list(tmp_path.iterdir())  # the probe cleaned up after itself


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes to read-only folders")
async def test_markdown_read_only_folder(tmp_path: Path) -> None:
    tmp_path.chmod(0o555)
    try:
        with pytest.raises(Unauthorized, match="Permission denied"):
            await md_channel(tmp_path).send(THREE[0], Target("incidents"), idempotency_key="1:blog:incidents")
        assert not (await md_channel(tmp_path).check()).ok
    finally:
        tmp_path.chmod(0o755)


# ----- the channel itself ------------------------------------------------------------------------


async def test_no_publisher_and_no_inbound(tmp_path: Path) -> None:
    channel = BlogChannel(BlogSettings())
    assert channel.parse_inbound(b'{"anything": 1}', {}) == []
    assert (await channel.check()).ok
    with pytest.raises(Unauthorized, match="channels.blog.publisher"):
        await channel.send(THREE[0], Target("incidents"), idempotency_key="1:blog:incidents")
    with pytest.raises(Rejected, match="no Markdown"):
        await md_channel(tmp_path).send(
            RenderedMessage("blog", "fr", "update", ()),
            Target("incidents"),
            idempotency_key="1:blog:incidents",
        )
    await channel.aclose()


# ----- what leaves for another renderer ----------------------------------------------------------

# What a CM might paste from a customer's message or a wiki: markup for each renderer downstream.
HOSTILE_TITLE = "Paiement <img src=x onerror=alert(1)> & co"
HOSTILE_MESSAGE = (
    "Le paiement échoue. <script>alert(1)</script> {% raw %}{{ site.github }}{% endraw %} "
    "{{< youtube dQw4w9WgXcQ >}} {{% notice %}}x{{% /notice %}} "
    "[embed]http://169.254.169.254/latest/meta-data/[/embed] [contact-form-7 id=1]"
)


def hostile_rendition() -> RenderedMessage:
    context = make_context(title=HOSTILE_TITLE, message=HOSTILE_MESSAGE, alternative="<b>Appelez</b> le 01")
    return Composer().render("blog", context)


async def test_markdown_file_carries_no_html_or_template_code_from_an_update(tmp_path: Path) -> None:
    sent = await md_channel(tmp_path).send(
        hostile_rendition(), Target("incidents"), idempotency_key="9:blog:x"
    )

    document = (tmp_path / sent.provider_message_id).read_text(encoding="utf-8")
    meta, body = parse(document)
    for raw in ("<script", "<img", "<b>", "{%", "{{", "%}", "}}"):
        assert raw not in document, raw
    assert meta["title"] == "Paiement &lt;img src=x onerror=alert(1)&gt; & co"
    assert body.startswith("\n<!-- update: 9:blog:x -->")  # our own markup stays
    assert "](<https://status.maison-exemple.fr/incidents/42>)" in body
    # A renderer that lets raw HTML through (kramdown, goldmark unsafe) shows the text as written.
    page = MarkdownIt("commonmark").render(body)
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page and "<script" not in page
    assert "{% raw %}{{ site.github }}{% endraw %} {{&lt; youtube dQw4w9WgXcQ &gt;}}" in page


async def test_wordpress_gets_an_escaped_title_and_no_shortcode(
    peer: WordPressPeer, wordpress: BlogChannel
) -> None:
    sent = await wordpress.send(hostile_rendition(), Target("incidents"), idempotency_key="9:blog:x")

    post = peer.posts[int(sent.provider_message_id)]
    assert post["title"] == "Paiement &lt;img src=x onerror=alert(1)&gt; &amp; co"
    for raw in ("<script", "<img", "<b>", "[embed]", "[contact-form-7", "[/embed]"):
        assert raw not in post["content"], raw
    assert "&#91;embed&#93;http://169.254.169.254/latest/meta-data/&#91;/embed&#93;" in post["content"]
