"""
Who the client is. Behind a proxy the peer is the proxy, and
X-Forwarded-For names the client; but anybody can send that header, so it
is believed only when the peer is one of TRUSTED_PROXIES (addresses or
networks), and then read from the right, where the proxies wrote, not from
the left, where the client may have. X-Forwarded-Proto is believed on the
same terms.

ProxyHeaders applies the rule to every HTTP request and socket as it comes
in, so Django's REMOTE_ADDR and request.is_secure(), and a consumer's
scope["client"], all name the real client. Daphne's own --proxy-headers
must stay off: it takes the leftmost address of X-Forwarded-For from
anybody, and the peer is lost before this rule can see it.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence
from functools import lru_cache

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.http import HttpRequest

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def client_address(*, peer: str, forwarded_for: str, trusted: Sequence[str]) -> str:
    """
    The client behind ``peer``: the peer itself, unless it is a trusted
    proxy; then the rightmost X-Forwarded-For hop that is not one.
    """
    networks = trusted_networks(tuple(trusted))
    client = _address(peer)
    if client is None or not _within(client, networks):
        return peer
    for hop in reversed([h.strip() for h in forwarded_for.split(",") if h.strip()]):
        address = _address(hop)
        if address is None:
            # Not an address: whoever wrote it is not to be believed, so the
            # client is the last proxy that was.
            break
        client = address
        if not _within(address, networks):
            break
    return str(client)


def client_ip(request: HttpRequest) -> str:
    """The client of a request (ProxyHeaders has applied the rule)."""
    return request.META.get("REMOTE_ADDR") or ""


def limit_key(address: str) -> str:
    """
    The client as counted by rate limits: an IPv4 address as it is, an
    IPv6 address by its /64, which is one subscriber's and holds more
    addresses than anybody could spend.
    """
    parsed = _address(address)
    if isinstance(parsed, ipaddress.IPv6Address) and parsed.ipv4_mapped is None:
        return str(ipaddress.IPv6Network((parsed, 64), strict=False))
    if isinstance(parsed, ipaddress.IPv6Address):
        return str(parsed.ipv4_mapped)
    return address


@lru_cache(maxsize=8)
def trusted_networks(trusted: tuple[str, ...]) -> tuple[Network, ...]:
    """TRUSTED_PROXIES parsed; an entry that is no address or network raises."""
    networks = []
    for entry in trusted:
        try:
            networks.append(ipaddress.ip_network(entry.strip(), strict=False))
        except ValueError as exc:
            raise ImproperlyConfigured(
                f"TRUSTED_PROXIES: {entry!r} is not an IP address or network."
            ) from exc
    return tuple(networks)


class ProxyHeaders:
    """ASGI middleware: the scope's client and scheme, by the rule above."""

    def __init__(self, application) -> None:
        self.application = application

    async def __call__(self, scope, receive, send):
        if scope["type"] in ("http", "websocket") and scope.get("client"):
            scope = forwarded_scope(scope, settings.TRUSTED_PROXIES)
        return await self.application(scope, receive, send)


def forwarded_scope(scope: dict, trusted: Sequence[str]) -> dict:
    """A copy of the scope with the client (and scheme) a trusted proxy named."""
    peer = scope["client"][0]
    if not trusted or not _within(_address(peer), trusted_networks(tuple(trusted))):
        return scope
    forwarded_for = ", ".join(_header_values(scope["headers"], b"x-forwarded-for"))
    client = client_address(peer=peer, forwarded_for=forwarded_for, trusted=trusted)
    scope = dict(scope, client=[client, 0])
    proto = next(iter(_header_values(scope["headers"], b"x-forwarded-proto")), "")
    proto = proto.split(",")[0].strip().lower()
    if proto in ("http", "https"):
        secure = proto == "https"
        if scope["type"] == "websocket":
            scope["scheme"] = "wss" if secure else "ws"
        else:
            scope["scheme"] = proto
    return scope


def _header_values(headers: Iterable[tuple[bytes, bytes]], name: bytes) -> list[str]:
    return [value.decode("latin-1") for key, value in headers if key.lower() == name]


def _address(text: str) -> Address | None:
    try:
        return ipaddress.ip_address(text.strip())
    except ValueError:
        return None


def _within(address: Address | None, networks: Sequence[Network]) -> bool:
    if address is None:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return any(address.version == n.version and address in n for n in networks)
