"""Replies read from a mailbox over IMAP, for setups whose SMTP listener cannot be reached.

    mailbox = ImapMailbox(settings.channels.email, known_address=is_ours)
    messages, cursor = await mailbox.poll(cursor)  # broadcaster.inbox.inbound.Poller calls this
    await mailbox.aclose()

The mailbox is the one the reply domain delivers to. Each message follows the SMTP listener's
rules (`channels.email.parse`): only `reply+<update>.<token>@<reply_domain>` recipients count,
read from To, Cc, Delivered-To and X-Original-To since there is no envelope here; automatic mail
and messages over `inbound_max_bytes` are skipped with a log line. As the listener does at RCPT,
a message's tokens are checked from its headers before its body is parsed (off the event loop).
Nothing is ever deleted or flagged (BODY.PEEK[]). The cursor is "<UIDVALIDITY>:<last UID read>"
(RFC 3501 §2.3.1.1).

Threading by In-Reply-To / References alone is not possible: our Message-IDs are a hash of the
delivery's idempotency key (`message_id_for`), so they name no update nor subscriber.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import re
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import getaddresses, parseaddr
from typing import Any, TypeVar

import aioimaplib
from pydantic import SecretStr

from channels.base import CheckResult, DeliveryError, InboundMessage, Rejected, Unauthorized, Unavailable
from channels.email.auth import with_sender_check
from channels.email.automated import is_automatic
from channels.email.parse import (
    PARSE_SECONDS,
    ReplyAddress,
    parse_headers,
    parse_message,
    parse_reply_address,
    referenced_ids,
    replies_from,
)
from channels.email.settings import EmailSettings

__all__ = ["ImapMailbox"]

log = logging.getLogger(__name__)

KnownAddress = Callable[[ReplyAddress], Awaitable[bool]]  # did we send this reply address?
# The reply address ("reply+<update>.<token>@…") of the first of these Message-IDs that is one of
# ours (a broadcast or an answer), or "".
ThreadOf = Callable[[list[str]], Awaitable[str]]
_NOT_ADDRESSED = "not addressed to a reply address"
_T = TypeVar("_T")

BACKFILL = 200  # a new or rebuilt mailbox (new UIDVALIDITY): read only its newest messages
PER_POLL = 50  # messages fetched by one poll; the next poll goes on from the cursor

_RECIPIENT_HEADERS = ("To", "Cc", "Delivered-To", "X-Original-To")
_CURSOR = re.compile(r"(\d{1,10}):(\d{1,10})")
_UIDVALIDITY = re.compile(rb"\[UIDVALIDITY (\d+)\]", re.IGNORECASE)
_FETCH_UID = re.compile(rb"\bUID (\d+)", re.IGNORECASE)
_FETCH_SIZE = re.compile(rb"\bRFC822\.SIZE (\d+)", re.IGNORECASE)
_FIXES = {
    Unauthorized: "fix the channels.email.imap_* setting named above",
    Unavailable: "check channels.email.imap_host, imap_port and imap_security, and that the server runs",
}


class ImapMailbox:
    """Polls one IMAP mailbox for replies (`channels.email.imap_*` settings), read-only.

    Each poll opens its own connection and logs out: nothing idles between polls, so a server
    that drops idle clients or restarts costs no failed poll. `known_address`, when given, drops
    replies to an address we never sent (the SMTP listener refuses those at RCPT).
    """

    def __init__(
        self,
        settings: EmailSettings,
        *,
        known_address: KnownAddress | None = None,
        thread_of: ThreadOf | None = None,
    ) -> None:
        self._settings = settings
        self._known_address = known_address
        self._thread_of = thread_of
        self._where = f"{settings.imap_host}:{settings.imap_port}"
        self._tls_context: ssl.SSLContext | None = None

    def __repr__(self) -> str:
        s = self._settings
        password = "set" if s.imap_password is not None else "unset"
        return (
            f"ImapMailbox(host={s.imap_host!r}, port={s.imap_port}, security={s.imap_security!r}, "
            f"username={s.imap_username!r}, mailbox={s.imap_mailbox!r}, password=<{password}>)"
        )

    async def poll(self, cursor: str) -> tuple[list[InboundMessage], str]:
        """Replies in messages that arrived after `cursor`, oldest first, and the next cursor.

        At most `PER_POLL` messages a call. A cursor of another UIDVALIDITY (or "") starts
        again from the newest `BACKFILL` messages; replies read twice are stored once.
        """
        validity, last = _parse_cursor(cursor)
        async with self._session() as client:
            uidvalidity = await self._select(client)
            after = last if validity == uidvalidity else None
            batch = (await self._new_uids(client, after))[:PER_POLL]
            raws = await self._fetch(client, batch)
        found: list[InboundMessage] = []
        for uid, raw in raws:
            found.extend(await self._replies(uid, raw))
        next_uid = batch[-1] if batch else after or 0
        return found, f"{uidvalidity}:{next_uid}"

    async def _thread_address(self, head: _Head) -> list[str]:
        """A reply sent to our From address instead of Reply-To: the reply address of what it answers."""
        assert self._thread_of is not None
        try:
            address = await self._thread_of(referenced_ids(head.message))
        except Exception:  # the database is unreachable: keep the cursor, read it again next poll
            raise Unavailable("thread lookup failed: IMAP replies will be read again") from None
        return [address] if address else []

    async def check(self) -> CheckResult:
        """Connect, secure, log in, open the mailbox, log out; say what is wrong and what fixes it."""
        s = self._settings
        if not s.imap_host:
            return CheckResult(False, "no IMAP server configured", "set channels.email.imap_host")
        try:
            async with self._session() as client:
                await self._select(client)
        except DeliveryError as exc:
            return CheckResult(False, exc.reason, _FIXES.get(type(exc), ""))
        return CheckResult(
            True,
            f"IMAP mailbox {s.imap_mailbox!r} on {self._where} ({s.imap_security}) opened "
            f"as {s.imap_username!r}",
        )

    async def aclose(self) -> None:
        """Nothing to close: every poll logs out of its own connection. Here for the app's lifecycle."""

    # -- connection --------------------------------------------------------------------------

    @asynccontextmanager
    async def _session(self) -> AsyncIterator[Any]:
        """A logged-in client for one poll or check; socket, TLS and protocol errors become ours."""
        try:
            client = await self._open()
        except (OSError, aioimaplib.AioImapException) as exc:  # TimeoutError is an OSError
            raise self._transport_error(exc) from None
        try:
            yield client
        except (OSError, aioimaplib.AioImapException) as exc:
            _abort(client)
            raise self._transport_error(exc) from None
        except BaseException:
            _abort(client)
            raise
        try:
            await client.logout()
        except (OSError, aioimaplib.AioImapException):  # what was read is read: only say it
            log.info("IMAP %s: logout failed, connection closed anyway", self._where)
        finally:
            _abort(client)

    async def _open(self) -> Any:
        """A logged-in aioimaplib client; raises `Unauthorized` when the settings cannot work."""
        s = self._settings
        if not s.imap_username or s.imap_password is None:
            raise Unauthorized(
                "no IMAP login configured: set channels.email.imap_username and channels.email.imap_password"
            )
        context = self._tls() if s.imap_security != "none" else None
        client = aioimaplib.IMAP4(
            host=s.imap_host,
            port=s.imap_port,
            timeout=s.timeout_seconds,
            ssl_context=context if s.imap_security == "tls" else None,
        )
        try:
            await client.wait_hello_from_server()
            if context is not None and s.imap_security == "starttls":
                await self._starttls(client, context)
            response = await self._login(client, s.imap_username, s.imap_password)
        except BaseException:
            _abort(client)
            raise
        if response.result != "OK":
            _abort(client)
            raise Unauthorized(
                f"IMAP server {self._where} refused the login of {s.imap_username!r}: "
                "check channels.email.imap_username and channels.email.imap_password"
            )
        return client

    async def _login(self, client: Any, username: str, password: SecretStr) -> Any:
        try:
            # aioimaplib quotes the password but sends the user name as is: quote it too.
            return await client.login(aioimaplib.quoted(username), password.get_secret_value())
        except ValueError:  # aioimaplib refuses CR, LF and NUL in arguments (its text quotes them)
            raise Unauthorized(
                "channels.email.imap_username or imap_password contains a line break or NUL"
            ) from None

    async def _starttls(self, client: Any, context: ssl.SSLContext) -> None:
        """Upgrade the connection (RFC 3501 §6.2.1); aioimaplib has the command but no method for it."""
        if not client.has_capability("STARTTLS"):
            raise Unauthorized(
                f"IMAP server {self._where} does not offer STARTTLS: "
                'set channels.email.imap_security = "tls" (port 993), or "none" on a trusted network'
            )
        protocol = client.protocol
        timeout = self._settings.timeout_seconds
        command = aioimaplib.Command("STARTTLS", protocol.new_tag(), loop=protocol.loop)
        response = await asyncio.wait_for(protocol.execute(command), timeout)
        if response.result != "OK":
            raise Unavailable(f"IMAP server {self._where} refused STARTTLS")
        protocol.transport = await asyncio.get_running_loop().start_tls(
            protocol.transport,
            protocol,
            context,
            server_hostname=self._settings.imap_host,
            ssl_handshake_timeout=timeout,
        )
        await asyncio.wait_for(protocol.capability(), timeout)  # they may change under TLS

    def _tls(self) -> ssl.SSLContext:
        if self._tls_context is None:
            context = ssl.create_default_context()  # system CAs, hostname checking on
            ca_file = self._settings.imap_ca_file
            if ca_file:
                try:
                    context.load_verify_locations(cafile=ca_file)
                except (OSError, ssl.SSLError) as exc:
                    reason = getattr(exc, "strerror", None) or getattr(exc, "reason", None) or "unreadable"
                    raise Unauthorized(
                        f"cannot use channels.email.imap_ca_file {ca_file!r}: {reason}"
                    ) from None
            self._tls_context = context
        return self._tls_context

    def _transport_error(self, exc: BaseException) -> DeliveryError:
        """A socket, TLS or protocol failure as a contract error; never the library's text."""
        if isinstance(exc, ssl.SSLCertVerificationError):
            return Unauthorized(
                f"the TLS certificate of IMAP server {self._where} is not trusted: "
                "set channels.email.imap_ca_file to the CA that signed it"
            )
        if isinstance(exc, ssl.SSLError):
            return Unavailable(
                f"TLS with IMAP server {self._where} failed: check channels.email.imap_security "
                '("tls" on port 993, "starttls" on port 143)'
            )
        if isinstance(exc, TimeoutError | aioimaplib.CommandTimeout):
            return Unavailable(f"IMAP server {self._where} did not answer in time")
        if isinstance(exc, OSError):
            return Unavailable(f"cannot connect to IMAP server {self._where}")
        return Unavailable(f"IMAP server {self._where} broke the protocol ({type(exc).__name__})")

    # -- mailbox -----------------------------------------------------------------------------

    async def _select(self, client: Any) -> int:
        """Open the mailbox; return its UIDVALIDITY."""
        mailbox = self._settings.imap_mailbox
        response = await client.select(_mailbox_argument(mailbox))
        if response.result != "OK":
            raise Unauthorized(
                f"IMAP mailbox {mailbox!r} cannot be opened on {self._where}: "
                "check channels.email.imap_mailbox"
            )
        for line in response.lines:
            match = _UIDVALIDITY.search(line) if isinstance(line, bytes) else None
            if match:
                return int(match.group(1))
        raise Unavailable(f"IMAP server {self._where} gave no UIDVALIDITY for {mailbox!r}")

    async def _new_uids(self, client: Any, after: int | None) -> list[int]:
        """UIDs above `after` in ascending order; the newest `BACKFILL` ones when `after` is None."""
        criteria = ("ALL",) if after is None else ("UID", f"{after + 1}:*")
        response = await client.uid_search(*criteria, charset=None)
        self._expect_ok(response, "UID SEARCH")
        found = {int(word) for line in response.lines[:-1] for word in line.split() if word.isdigit()}
        if after is None:
            return sorted(found)[-BACKFILL:]
        return sorted(uid for uid in found if uid > after)  # "n:*" also matches the last UID when n > it

    async def _fetch(self, client: Any, uids: list[int]) -> list[tuple[int, bytes]]:
        """The wire bytes of each message not over `inbound_max_bytes` (sizes are asked first)."""
        if not uids:
            return []
        limit = self._settings.inbound_max_bytes
        sizes = await self._sizes(client, uids)
        fetched = []
        for uid in uids:
            if sizes.get(uid, 0) > limit:
                log.warning(
                    "IMAP message UID %d is %d bytes, over channels.email.inbound_max_bytes (%d): skipped",
                    uid,
                    sizes[uid],
                    limit,
                )
                continue
            response = await client.uid("fetch", str(uid), "(BODY.PEEK[])")
            self._expect_ok(response, "UID FETCH")
            raw = next((bytes(line) for line in response.lines if isinstance(line, bytearray)), None)
            if raw is None:
                log.info("IMAP message UID %d was removed before it could be read: skipped", uid)
                continue
            fetched.append((uid, raw))
        return fetched

    async def _sizes(self, client: Any, uids: list[int]) -> dict[int, int]:
        response = await client.uid("fetch", ",".join(map(str, uids)), "(UID RFC822.SIZE)")
        self._expect_ok(response, "UID FETCH")
        sizes = {}
        for line in response.lines:
            uid = _FETCH_UID.search(line) if isinstance(line, bytes) else None
            size = _FETCH_SIZE.search(line) if isinstance(line, bytes) else None
            if uid and size:
                sizes[int(uid.group(1))] = int(size.group(1))
        return sizes

    def _expect_ok(self, response: Any, command: str) -> None:
        if response.result != "OK":
            raise Unavailable(f"IMAP server {self._where} answered {response.result} to {command}")

    # -- one message -------------------------------------------------------------------------

    async def _replies(self, uid: int, raw: bytes) -> list[InboundMessage]:
        """The listener's rules, applied to one message: its tokens are checked before its body is read.

        Parsing runs off the event loop within `PARSE_SECONDS`; a message not parsed in time is
        `Unavailable` (the cursor stays: it is read again next poll), one that cannot be parsed is skipped.
        """
        domain = self._settings.reply_domain
        head = await self._parsed(uid, _head, raw, domain)
        if head is None:
            return []
        if head.reason:
            # No addresses or tokens in the log: the reason is what an operator needs.
            log.info("IMAP message UID %d ignored: automatic message (%s)", uid, head.reason)
            return []
        recipients = head.recipients
        if not recipients and self._thread_of is not None:
            recipients = await self._thread_address(head)
        if not recipients:
            threaded = " and answers none of our messages" if self._thread_of is not None else ""
            log.info("IMAP message UID %d ignored: %s%s", uid, _NOT_ADDRESSED, threaded)
            return []
        recipients = await self._known(uid, recipients)
        if not recipients:
            log.info("IMAP message UID %d ignored: we never sent its reply address", uid)
            return []
        authserv_id = self._settings.inbound_authserv_id
        replies = await self._parsed(uid, _body, raw, recipients, domain, head.sender, authserv_id)
        return replies or []

    async def _known(self, uid: int, recipients: list[str]) -> list[str]:
        """The reply addresses we sent (all, without `known_address`)."""
        if self._known_address is None:
            return recipients
        domain = self._settings.reply_domain
        try:
            return [
                address
                for address in recipients
                if (parsed := parse_reply_address(address, domain)) and await self._known_address(parsed)
            ]
        except Exception:  # the database is unreachable: keep the cursor, read it again next poll
            log.warning("IMAP message UID %d: reply token lookup failed", uid, exc_info=True)
            raise Unavailable("reply token lookup failed: IMAP replies will be read again") from None

    async def _parsed(self, uid: int, parse: Callable[..., _T], *args: Any) -> _T | None:
        """`parse(*args)` in a worker thread within `PARSE_SECONDS`; None when it fails."""
        try:
            return await asyncio.wait_for(asyncio.to_thread(parse, *args), PARSE_SECONDS)
        except TimeoutError:  # an overloaded machine, not a bad message: read it again next poll
            raise Unavailable(f"IMAP message UID {uid} not parsed within {PARSE_SECONDS:.0f} s") from None
        except Exception:  # a message we cannot read never becomes readable: skip it, keep polling
            log.warning("IMAP message UID %d could not be parsed: skipped", uid, exc_info=True)
            return None


@dataclass(frozen=True, slots=True)
class _Head:
    message: EmailMessage  # the header block only: the body is not parsed
    sender: str
    recipients: list[str]  # our reply addresses among the recipients
    reason: str  # why it is automatic; "" for a human


def _head(raw: bytes, reply_domain: str) -> _Head:
    """Who a message is from and for, and whether a machine sent it, from its headers alone."""
    message = parse_headers(raw)
    sender = _envelope_sender(message)
    reason = is_automatic(message, sender)
    recipients = [address for address in _recipients(message) if parse_reply_address(address, reply_domain)]
    return _Head(message, sender, recipients, reason)


def _body(
    raw: bytes, recipients: list[str], reply_domain: str, sender: str, authserv_id: str
) -> list[InboundMessage]:
    """The replies in the whole message, each with its sender checked."""
    message = parse_message(raw)
    replies = replies_from(message, raw, recipients, reply_domain, mail_from=sender)
    return with_sender_check(replies, message, authserv_id)


def _envelope_sender(message: EmailMessage) -> str:
    """Return-Path, written by the final delivery from MAIL FROM ("<>" for bounces); else From."""
    return_path = _header_values(message, "Return-Path")
    if return_path:
        return return_path[0].strip()
    from_values = _header_values(message, "From")
    return parseaddr(from_values[0])[1] if from_values else ""


def _recipients(message: EmailMessage) -> list[str]:
    values = [value for name in _RECIPIENT_HEADERS for value in _header_values(message, name)]
    return [address for _, address in getaddresses(values) if address]


def _header_values(message: EmailMessage, name: str) -> list[str]:
    # Malformed headers must not lose a reply: fall back to the raw values as text.
    try:
        values = message.get_all(name) or []
    except (ValueError, IndexError, TypeError):
        values = [value for key, value in message.raw_items() if key.lower() == name.lower()]
    return [" ".join(str(value).split()) for value in values]


def _parse_cursor(cursor: str) -> tuple[int | None, int]:
    """ "" → (None, 0); "<uidvalidity>:<uid>" → both; anything else is `Rejected` (the poller resets it)."""
    if not cursor:
        return None, 0
    match = _CURSOR.fullmatch(cursor)
    if match is None:
        raise Rejected(f"IMAP cursor {cursor[:40]!r} is not <uidvalidity>:<uid>")
    return int(match.group(1)), int(match.group(2))


def _mailbox_argument(name: str) -> str:
    """The mailbox name as a quoted IMAP string, non-ASCII runs in modified UTF-7 (RFC 3501 §5.1.3).

    >>> _mailbox_argument("Réponses")
    '"R&AOk-ponses"'
    """
    encoded: list[str] = []
    run: list[str] = []
    for char in [*name, ""]:  # "" flushes the last run
        if char and not 0x20 <= ord(char) <= 0x7E:
            run.append(char)
            continue
        if run:
            utf16 = base64.b64encode("".join(run).encode("utf-16-be")).decode("ascii")
            encoded.append("&" + utf16.rstrip("=").replace("/", ",") + "-")
            run.clear()
        encoded.append("&-" if char == "&" else char)
    return str(aioimaplib.quoted("".join(encoded)))


def _abort(client: Any) -> None:
    """Drop the connection now (a TLS close would wait for the server's close_notify)."""
    transport = client.protocol.transport
    if transport is not None:
        transport.abort()
