"""Where a URL that came from outside may take the server: https, a listed host, a public address.

A browser's push subscription names the URL we POST to, so a customer (or a forged CSV line) could
point it at an internal service. `OutboundPolicy.check_url` runs when such a URL is accepted and
again on every request; `guarded_session` resolves names through `PublicOnlyResolver`, which drops
non-public answers at connection time (a name re-pointed after the check, DNS rebinding, still
cannot reach them), and refuses every redirect instead of following it.

>>> policy = OutboundPolicy(hosts=("*.push.apple.com",))
>>> policy.check_url("https://web.push.apple.com/QGu…")
'web.push.apple.com'
"""

from __future__ import annotations

import ipaddress
import socket
import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.client_middlewares import ClientHandlerType
from aiohttp.resolver import DefaultResolver

__all__ = [
    "GuardedSession",
    "OutboundPolicy",
    "PublicOnlyResolver",
    "RedirectRefused",
    "UnsafeAddress",
    "UnsafeURL",
    "guarded_session",
]

_IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
_IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
_MAX_SHOWN = 80  # characters of a customer's host name quoted in an error


class UnsafeURL(ValueError):
    """The URL must not be requested; the message says why (no path or query: they may hold tokens)."""


class UnsafeAddress(OSError):
    """A name resolved only to addresses the policy refuses (raised by the resolver, at connect)."""


class RedirectRefused(aiohttp.ClientError):
    """The server answered a redirect; it is never followed (its target was never checked)."""

    def __init__(self, status: int) -> None:
        super().__init__(f"answered a redirect (HTTP {status}); redirects are not followed")
        self.status = status


def _shown(host: str) -> str:
    return repr(host if len(host) <= _MAX_SHOWN else host[: _MAX_SHOWN - 1] + "…")


def _non_public(ip: _IPAddress) -> str:
    """What kind of non-public address `ip` is ("" when it is a public unicast address)."""
    for kind, flag in (
        ("loopback", ip.is_loopback),
        ("unspecified", ip.is_unspecified),
        ("link-local", ip.is_link_local),
        ("multicast", ip.is_multicast),
        ("private", ip.is_private),
        ("reserved", ip.is_reserved),
    ):
        if flag:
            return kind
    return "" if ip.is_global else "non-global"  # e.g. 100.64.0.0/10, carrier-grade NAT


@dataclass(frozen=True, slots=True)
class OutboundPolicy:
    """Hosts a URL from outside may name (`"*.example.com"` = any subdomain), all over https.

    Addresses must be public unicast, except inside `private_networks` (an explicit exception for a
    push service in your own network, or the tests' 127.0.0.1/32). `setting` names the config keys
    in error messages.
    """

    hosts: Sequence[str]
    private_networks: Sequence[_IPNetwork] = ()
    setting: str = "channels.push.webpush_hosts"

    def listed(self, host: str) -> bool:
        """Whether `host` (lower case, no trailing dot) is on the allow-list."""
        for pattern in self.hosts:
            pattern = pattern.lower()
            if pattern.startswith("*."):
                if host.endswith(pattern[1:]) and len(host) > len(pattern) - 1:
                    return True
            elif host == pattern:
                return True
        return False

    def refusal(self, address: str) -> str:
        """Why a connection to IP `address` is refused ("" when it is allowed)."""
        ip = ipaddress.ip_address(address.split("%", 1)[0])  # drop an IPv6 zone id
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        if any(ip in network for network in self.private_networks):
            return ""
        kind = _non_public(ip)
        return f"{ip} is a {kind} address" if kind else ""

    def check_url(self, url: str) -> str:
        """The URL's host when it may be requested; `UnsafeURL` naming the problem otherwise."""
        parts = urlsplit(url.strip())
        if parts.scheme.lower() != "https":
            raise UnsafeURL("must be an https:// URL")
        if parts.username is not None or parts.password is not None:
            raise UnsafeURL("must not carry a user name or password")
        try:
            parts.port  # noqa: B018 - parsing it is the check
        except ValueError:
            raise UnsafeURL("has an invalid port") from None
        host = (parts.hostname or "").rstrip(".").lower()
        if not host:
            raise UnsafeURL("has no host")
        if not self.listed(host):
            raise UnsafeURL(f"host {_shown(host)} is not a known push service (see {self.setting})")
        try:
            refused = self.refusal(host)
        except ValueError:
            return host  # a name: its addresses are checked when it is resolved
        if refused:
            raise UnsafeURL(f"{refused}: refused")
        return host


class PublicOnlyResolver(AbstractResolver):
    """The system resolver, minus the answers `policy` refuses; `UnsafeAddress` if none is left."""

    def __init__(self, policy: OutboundPolicy) -> None:
        self._policy = policy
        self._resolver = DefaultResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        found = await self._resolver.resolve(host, port, family)
        allowed = [result for result in found if not self._policy.refusal(result["host"])]
        if not allowed:
            reason = self._policy.refusal(found[0]["host"]) if found else "no address"
            raise UnsafeAddress(f"{_shown(host)} resolves to {reason}: refused")
        return allowed

    async def close(self) -> None:
        await self._resolver.close()


@dataclass(slots=True)
class GuardedSession:
    """An aiohttp session that only reaches what `policy` allows, and the resolver it does not own."""

    session: aiohttp.ClientSession
    resolver: PublicOnlyResolver

    async def aclose(self) -> None:
        await self.session.close()
        await self.resolver.close()


def guarded_session(policy: OutboundPolicy, tls: ssl.SSLContext, timeout: float) -> GuardedSession:
    """A session whose every request is checked, resolved through the policy, and never redirected.

    Call from a running event loop (aiohttp needs one).
    """

    async def checked(request: aiohttp.ClientRequest, handler: ClientHandlerType) -> aiohttp.ClientResponse:
        policy.check_url(str(request.url))
        response = await handler(request)
        if 300 <= response.status < 400:
            response.release()
            raise RedirectRefused(response.status)
        return response

    resolver = PublicOnlyResolver(policy)
    connector = aiohttp.TCPConnector(ssl=tls, resolver=resolver)
    session = aiohttp.ClientSession(
        connector=connector,
        timeout=aiohttp.ClientTimeout(total=timeout),
        middlewares=(checked,),
        trust_env=False,  # a proxy from the environment would make the address checks moot
    )
    return GuardedSession(session, resolver)
