"""A fake Telegram Bot API over real HTTP (Starlette + uvicorn in its own thread).

It parses what python-telegram-bot really sends (form-encoded fields, JSON inside some of them),
answers with the Bot API's real response shapes, and injects the faults a channel must survive:
429 with `retry_after`, a bot blocked by a user, an unknown chat, a bad token, a gateway down.
It enforces the 4096-character limit and knows which messages exist, so a reply to a message
that is not there fails as Telegram's does (unless `allow_sending_without_reply`).

>>> with TelegramPeer() as peer:
...     settings = TelegramSettings(token="123:TEST", base_url=peer.base_url)
"""

from __future__ import annotations

import asyncio
import html
import itertools
import json
import re
import threading
import time
from collections.abc import Iterable
from typing import Any
from urllib.parse import parse_qsl

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.peers.http_server import ServedPeer, ServerThread
from tests.peers.telegram_flood import FloodLimits

__all__ = ["TelegramPeer"]

# Fields PTB sends as JSON text inside a form field; every other field stays a string.
_JSON_FIELDS = frozenset({"link_preview_options", "reply_parameters", "reply_markup", "entities"})
# https://core.telegram.org/bots/api#html-style
_HTML_TAGS = "b|strong|i|em|u|ins|s|strike|del|a|code|pre|tg-spoiler|span|blockquote|tg-emoji"
_HTML_TAG = re.compile(rf"</?(?:{_HTML_TAGS})(?:\s[^<>]*)?>")
_HTML_ENTITY = re.compile(r"&(?:lt|gt|amp|quot|#\d+|#x[0-9a-fA-F]+);")
_MAX_TEXT = 4096  # https://core.telegram.org/bots/api#sendmessage, after entities parsing
_MAX_LONG_POLL = 10.0  # seconds a getUpdates may wait here, whatever its timeout (bounded tests)
_BAD_GATEWAY = b"<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>nginx</body>\r\n</html>\r\n"


def _html_error(text: str) -> str | None:
    """Return Telegram's "can't parse entities" complaint for malformed HTML, or None."""
    for index, char in enumerate(text):
        if char == "<" and not _HTML_TAG.match(text, index):
            offset = len(text[:index].encode("utf-8"))
            return f"Bad Request: can't parse entities: Unsupported start tag at byte offset {offset}"
        if char == "&" and not _HTML_ENTITY.match(text, index):
            offset = len(text[:index].encode("utf-8"))
            return f"Bad Request: can't parse entities: Character entity expected at byte offset {offset}"
    return None


def _plain(text: str) -> str:
    """What Telegram returns as `text`: tags removed, entities decoded."""
    return html.unescape(re.sub(r"<[^<>]*>", "", text))


class TelegramPeer(ServedPeer):
    """A Bot API on 127.0.0.1; give `peer.base_url` to `TelegramSettings.base_url`.

    Faults: `latency`, `rate_limit_next(n)`, `enforce_limits()`, `block(chat_id)`, `known_chats`,
    `down`.
    Seeds: `add_customer_message(chat_id)`. Records: `messages` (with `reply_to_message_id`,
    the message actually quoted), `requests`, `wait_for(count, timeout)`.
    Long polling: `queue_message(chat_id, text)` and `queue_update(update)` feed getUpdates;
    `webhook_url` (setWebhook) makes it answer 409; `get_updates_calls` records its parameters;
    a getUpdates arriving while another waits ends the waiting one with 409, as Telegram does with
    two bot instances polling one token (`get_updates_conflicts` counts them).
    """

    def __init__(
        self,
        valid_tokens: Iterable[str] = ("123:TEST",),
        *,
        bot_username: str = "shop_status_bot",
        latency: float = 0.0,
    ) -> None:
        self.valid_tokens = frozenset(valid_tokens)
        self.bot_username = bot_username
        first = min(self.valid_tokens, default="1:")
        self._bot_id = int(first.split(":", 1)[0]) if first.split(":", 1)[0].isdigit() else 1
        self.latency = latency
        self.down = False
        self.known_chats: set[str] | None = None  # None: every chat exists
        self.messages: list[dict[str, Any]] = []
        self.requests = 0
        self._cond = threading.Condition()
        self._blocked: set[str] = set()
        self._rate_limited = 0
        self._retry_after = 3
        self.flood: FloodLimits | None = None  # `enforce_limits()`: 429 over Telegram's limits
        self._next_id: dict[str, itertools.count[int]] = {}
        self._existing: set[tuple[str, int]] = set()  # (chat, message id) of every message in a chat
        self._channel_ids: dict[str, int] = {}
        # Long polling: updates waiting for getUpdates, and the webhook that makes it answer 409.
        self.webhook_url = ""  # set by setWebhook, emptied by deleteWebhook
        self.get_updates_calls: list[dict[str, Any]] = []  # the parameters of each getUpdates
        self._updates: list[dict[str, Any]] = []
        self._next_update_id = itertools.count(1)
        self.get_updates_conflicts = 0
        self._long_poll = 0  # which getUpdates call is the latest: an earlier one still waiting ends
        app = Starlette(routes=[Route("/bot{token}/{method}", self._endpoint, methods=["GET", "POST"])])
        self._server = ServerThread(app, "telegram-peer")
        self.port = self._server.port
        self.base_url = f"{self._server.origin}/bot"

    # ----- faults and records ----------------------------------------------------------------

    def reset(self) -> None:
        """Forget records and faults (a peer shared by several tests)."""
        with self._cond:
            self.latency = 0.0
            self.down = False
            self.known_chats = None
            self.messages.clear()
            self.requests = 0
            self._blocked.clear()
            self._rate_limited = 0
            self.flood = None
            self._next_id.clear()
            self._existing.clear()
            self.webhook_url = ""
            self.get_updates_calls.clear()
            self._updates.clear()
            self.get_updates_conflicts = 0

    def rate_limit_next(self, n: int, retry_after: int = 3) -> None:
        """Answer the next `n` sendMessage calls with 429 and `retry_after` seconds."""
        with self._cond:
            self._rate_limited = n
            self._retry_after = retry_after

    def enforce_limits(self, per_second: int = 30, per_chat: float = 1.0, per_group: int = 20) -> None:
        """Refuse with 429 what goes over `per_second` overall in any sliding second, one message
        per `per_chat` seconds to a chat, `per_group` a minute to a group; `flood.refused` counts."""
        with self._cond:
            self.flood = FloodLimits(per_second, per_chat, per_group)

    def block(self, chat_id: int | str) -> None:
        """Act as if the user of `chat_id` blocked the bot (403)."""
        with self._cond:
            self._blocked.add(str(chat_id))

    def add_customer_message(self, chat_id: int | str) -> int:
        """A customer writes in `chat_id` (the bot may now quote it); returns the message id."""
        with self._cond:
            return self._new_message_id(str(chat_id))

    def wait_for(self, count: int, timeout: float) -> bool:
        """Wait until at least `count` messages were accepted; False after `timeout` seconds."""
        with self._cond:
            return self._cond.wait_for(lambda: len(self.messages) >= count, timeout=timeout)

    def texts(self, chat_id: int | str) -> list[str]:
        """Texts accepted for one chat, in arrival order."""
        with self._cond:
            return [m["text"] for m in self.messages if m["chat_id"] == str(chat_id)]

    def queue_message(self, chat_id: int, text: str, *, kind: str = "message", **sender: Any) -> int:
        """A customer writes `text` to the bot in `chat_id`: getUpdates returns it. Returns its update_id.

        `kind` "edited_message" makes it an edit; `sender` overrides fields of its `from` user.
        """
        with self._cond:
            now = int(time.time())
            message: dict[str, Any] = {
                "message_id": self._new_message_id(str(chat_id)),
                "from": {"id": abs(chat_id), "is_bot": False, "first_name": "Client", **sender},
                "chat": self._chat(str(chat_id)),
                "date": now,
                "text": text,
            }
            if kind == "edited_message":
                message["edit_date"] = now
            update_id = next(self._next_update_id)
            self._updates.append({"update_id": update_id, kind: message})
            self._cond.notify_all()
            return update_id

    def queue_update(self, update: dict[str, Any]) -> int:
        """Feed getUpdates one update exactly as given (a recorded shape), under the next update_id."""
        with self._cond:
            update_id = next(self._next_update_id)
            self._updates.append({**update, "update_id": update_id})
            self._cond.notify_all()
            return update_id

    # ----- HTTP ------------------------------------------------------------------------------

    async def _endpoint(self, request: Request) -> Response:
        with self._cond:
            self.requests += 1
        if self.latency > 0:
            await asyncio.sleep(self.latency)  # simulated network/API latency, not synchronisation
        if self.down:
            return Response(_BAD_GATEWAY, status_code=502, media_type="text/html")
        if request.path_params["token"] not in self.valid_tokens:
            return _error(401, "Unauthorized")
        method = request.path_params["method"].lower()  # Bot API method names ignore case
        try:
            params = await _read_params(request)
        except ValueError as exc:
            return _error(400, f"Bad Request: {exc}")
        if method == "getme":
            return _ok(self._bot_user())
        if method in {"setwebhook", "deletewebhook"}:
            with self._cond:
                self.webhook_url = str(params.get("url", "")) if method == "setwebhook" else ""
        if method == "getwebhookinfo":
            return _ok(self._webhook_info())
        if method == "getupdates":
            return await self._get_updates(params)
        if method in {"deletewebhook", "close", "logout", "setwebhook"}:
            return _ok(True)
        if method == "sendmessage":
            return self._send_message(params)
        return _error(404, "Not Found")

    async def _get_updates(self, params: dict[str, Any]) -> Response:
        """Updates from `offset` on (earlier ones are confirmed and forgotten), as Telegram does.

        With nothing pending it waits up to `timeout` seconds (at most `_MAX_LONG_POLL`) for one.
        """
        try:
            offset = int(params.get("offset") or 0)
            limit = min(max(int(params.get("limit") or 100), 1), 100)
            timeout = min(max(float(params.get("timeout") or 0), 0.0), _MAX_LONG_POLL)
            kinds = params.get("allowed_updates")
            kinds = json.loads(kinds) if isinstance(kinds, str) else kinds
        except ValueError:
            return _error(400, "Bad Request: wrong getUpdates parameter")
        with self._cond:
            self.get_updates_calls.append({"offset": offset, "timeout": timeout, "allowed_updates": kinds})
            if self.webhook_url:
                return _error(
                    409,
                    "Conflict: can't use getUpdates method while webhook is active; "
                    "use deleteWebhook to delete the webhook first",
                )
            self._updates = [u for u in self._updates if u["update_id"] >= offset]
            self._long_poll += 1
            mine = self._long_poll
            self._cond.notify_all()  # a call still waiting is terminated by this one
        # A worker thread waits on the condition that queue_message() notifies (bounded).
        updates = await asyncio.to_thread(self._wait_for_updates, timeout, mine)
        if updates is None:
            return _error(
                409,
                "Conflict: terminated by other getUpdates request; "
                "make sure that only one bot instance is running",
            )
        wanted = [u for u in updates if not kinds or any(kind in u for kind in kinds)]
        return _ok(wanted[:limit])

    def _wait_for_updates(self, timeout: float, mine: int) -> list[dict[str, Any]] | None:
        """The pending updates; None when a later getUpdates call terminated this one."""
        with self._cond:
            self._cond.wait_for(lambda: bool(self._updates) or self._long_poll != mine, timeout=timeout)
            if self._long_poll != mine:
                self.get_updates_conflicts += 1
                return None
            return list(self._updates)

    def _webhook_info(self) -> dict[str, Any]:
        with self._cond:
            return {
                "url": self.webhook_url,
                "has_custom_certificate": False,
                "pending_update_count": len(self._updates),
            }

    def _bot_user(self) -> dict[str, Any]:
        return {
            "id": self._bot_id,
            "is_bot": True,
            "first_name": "Shop Status",
            "username": self.bot_username,
            "can_join_groups": True,
            "can_read_all_group_messages": False,
            "supports_inline_queries": False,
        }

    def _send_message(self, params: dict[str, Any]) -> Response:
        chat_key = str(params.get("chat_id", "")).strip()
        text = params.get("text")
        if not chat_key:
            return _error(400, "Bad Request: chat_id is empty")
        if not isinstance(text, str) or not text:
            return _error(400, "Bad Request: message text is empty")
        parse_mode = params.get("parse_mode")
        is_html = isinstance(parse_mode, str) and parse_mode.upper() == "HTML"
        if is_html:
            problem = _html_error(text)
            if problem:
                return _error(400, problem)
        shown = _plain(text) if is_html else text
        if len(shown.encode("utf-16-le")) // 2 > _MAX_TEXT:
            return _error(400, "Bad Request: message is too long")
        reply = params.get("reply_parameters")
        if reply is not None and not isinstance(reply, dict):
            return _error(400, "Bad Request: can't parse reply parameters JSON object")
        with self._cond:
            wait = self._flood_wait(chat_key)
            if wait is not None:
                return _error(429, f"Too Many Requests: retry after {wait}", {"retry_after": wait})
            if chat_key in self._blocked:
                return _error(403, "Forbidden: bot was blocked by the user")
            if self.known_chats is not None and chat_key not in self.known_chats:
                return _error(400, "Bad Request: chat not found")
            wanted = reply.get("message_id") if reply is not None else None
            quoted = wanted if (chat_key, wanted) in self._existing else None
            if reply is not None and quoted is None and not reply.get("allow_sending_without_reply"):
                return _error(400, "Bad Request: message to be replied not found")
            message_id = self._new_message_id(chat_key)
            chat = self._chat(chat_key)
            now = time.time()
            self.messages.append(
                {
                    "chat_id": chat_key,
                    "text": text,
                    "parse_mode": parse_mode,
                    "message_id": message_id,
                    "link_preview_options": params.get("link_preview_options"),
                    "reply_parameters": reply,
                    "reply_to_message_id": quoted,
                    "received": time.monotonic(),
                }
            )
            self._cond.notify_all()
        result: dict[str, Any] = {"message_id": message_id, "date": int(now), "chat": chat, "text": shown}
        if quoted is not None:
            result["reply_to_message"] = {"message_id": quoted, "date": int(now), "chat": chat}
        if chat["type"] == "channel":
            result["sender_chat"] = chat
        else:
            result["from"] = self._bot_user()
        return _ok(result)

    def _flood_wait(self, chat_key: str) -> int | None:
        """The `retry_after` of a 429 for this message, or None (caller holds the lock)."""
        if self._rate_limited > 0:
            self._rate_limited -= 1
            return self._retry_after
        if self.flood is not None:
            return self.flood.check(chat_key, time.monotonic())
        return None

    def _new_message_id(self, chat_key: str) -> int:
        """Message ids count per chat, the customer's and the bot's alike (caller holds the lock)."""
        message_id = next(self._next_id.setdefault(chat_key, itertools.count(1)))
        self._existing.add((chat_key, message_id))
        return message_id

    def _chat(self, chat_key: str) -> dict[str, Any]:
        """The `chat` object of a response; @usernames get a stable -100… id (a channel)."""
        if chat_key.startswith("@"):
            chat_id = self._channel_ids.setdefault(chat_key, -1001000000000 - len(self._channel_ids))
            return {"id": chat_id, "type": "channel", "title": chat_key[1:], "username": chat_key[1:]}
        try:
            chat_id = int(chat_key)
        except ValueError:
            chat_id = 0
        if chat_id < 0:
            kind = "supergroup" if chat_key.startswith("-100") else "group"
            return {"id": chat_id, "type": kind, "title": f"Group {chat_id}"}
        return {"id": chat_id, "type": "private", "first_name": "Client"}


async def _read_params(request: Request) -> dict[str, Any]:
    """Parameters from the query string, a form-encoded body (PTB) or a JSON body."""
    params: dict[str, Any] = dict(request.query_params)
    body = await request.body()
    if not body:
        return params
    content_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if content_type == "application/json":
        try:
            data = json.loads(body)
        except json.JSONDecodeError as exc:
            raise ValueError("request body is not valid JSON") from exc
        if not isinstance(data, dict):
            raise ValueError("request body must be a JSON object")
        params.update(data)
        return params
    if content_type == "application/x-www-form-urlencoded":
        for key, value in parse_qsl(body.decode("utf-8"), keep_blank_values=True):
            if key in _JSON_FIELDS:
                try:
                    params[key] = json.loads(value)
                except json.JSONDecodeError as exc:
                    raise ValueError(f"can't parse {key} JSON object") from exc
            else:
                params[key] = value
        return params
    raise ValueError(f"unsupported content type {content_type!r}")


def _ok(result: object) -> Response:
    return JSONResponse({"ok": True, "result": result})


def _error(status: int, description: str, parameters: dict[str, Any] | None = None) -> Response:
    body: dict[str, Any] = {"ok": False, "error_code": status, "description": description}
    if parameters:
        body["parameters"] = parameters
    return JSONResponse(body, status_code=status)
