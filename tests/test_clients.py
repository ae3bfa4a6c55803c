"""Who the client is: X-Forwarded-For believed only from trusted proxies."""

from __future__ import annotations

import pytest
from django.core.exceptions import ImproperlyConfigured

from project.common.clients import ProxyHeaders, client_address, limit_key

NGINX = ["127.0.0.1", "::1"]


def test_without_trusted_proxies_the_peer_is_the_client():
    """TRUSTED_PROXIES empty: X-Forwarded-For is ignored."""
    assert client_address(peer="41.0.0.7", forwarded_for="1.2.3.4", trusted=[]) == "41.0.0.7"


def test_a_peer_that_is_no_trusted_proxy_is_the_client():
    """Anyone else's X-Forwarded-For is ignored."""
    got = client_address(peer="41.0.0.7", forwarded_for="1.2.3.4", trusted=NGINX)
    assert got == "41.0.0.7"


def test_behind_a_trusted_proxy_the_hop_it_wrote_is_the_client():
    """nginx appends the client; what the client wrote before it is not believed."""
    got = client_address(peer="127.0.0.1", forwarded_for="6.6.6.6, 41.0.0.7", trusted=NGINX)
    assert got == "41.0.0.7"


def test_a_chain_of_trusted_proxies_is_walked_from_the_right():
    """Proxies in a trusted network are skipped until the first address outside it."""
    got = client_address(
        peer="10.0.0.9",
        forwarded_for="6.6.6.6, 41.0.0.7, 10.1.2.3",
        trusted=["10.0.0.0/8"],
    )
    assert got == "41.0.0.7"


def test_a_hop_that_is_no_address_stops_the_walk():
    """Garbage in the header leaves the last trusted hop as the client."""
    got = client_address(peer="127.0.0.1", forwarded_for="41.0.0.7, nonsense", trusted=NGINX)
    assert got == "127.0.0.1"


def test_a_bad_trusted_proxy_entry_is_a_configuration_error():
    """TRUSTED_PROXIES entries must be addresses or networks."""
    with pytest.raises(ImproperlyConfigured):
        client_address(peer="127.0.0.1", forwarded_for="", trusted=["localhost"])


def test_limits_count_an_ipv6_client_by_its_64():
    """Every address of one /64 is one client; IPv4 addresses stand alone."""
    assert limit_key("2001:db8:1:2::5") == limit_key("2001:db8:1:2:ffff::9") == "2001:db8:1:2::/64"
    assert limit_key("2001:db8:1:3::5") != limit_key("2001:db8:1:2::5")
    assert limit_key("41.0.0.7") == "41.0.0.7"
    assert limit_key("::ffff:41.0.0.7") == "41.0.0.7"


# --- the ASGI middleware ----------------------------------------------------------


async def scope_seen(scope: dict) -> dict:
    seen = {}

    async def app(scope, receive, send):
        seen.update(scope)

    await ProxyHeaders(app)(scope, None, None)
    return seen


def http_scope(peer: str, *headers: tuple[bytes, bytes], kind: str = "http") -> dict:
    return {
        "type": kind,
        "scheme": "ws" if kind == "websocket" else "http",
        "client": [peer, 50000],
        "headers": list(headers),
    }


async def test_requests_from_a_trusted_proxy_get_its_client_and_scheme(settings):
    """Through nginx, Django and the consumers see the real client and https."""
    settings.TRUSTED_PROXIES = NGINX
    seen = await scope_seen(
        http_scope(
            "127.0.0.1",
            (b"x-forwarded-for", b"6.6.6.6, 41.0.0.7"),
            (b"x-forwarded-proto", b"https"),
        )
    )
    assert seen["client"] == ["41.0.0.7", 0]
    assert seen["scheme"] == "https"


async def test_sockets_from_a_trusted_proxy_get_wss(settings):
    """A socket behind TLS is wss."""
    settings.TRUSTED_PROXIES = NGINX
    seen = await scope_seen(
        http_scope(
            "::1",
            (b"x-forwarded-for", b"41.0.0.7"),
            (b"x-forwarded-proto", b"https"),
            kind="websocket",
        )
    )
    assert seen["client"] == ["41.0.0.7", 0]
    assert seen["scheme"] == "wss"


async def test_forwarded_headers_from_anyone_else_change_nothing(settings):
    """A client that talks to the worker directly cannot name another address."""
    settings.TRUSTED_PROXIES = NGINX
    scope = http_scope(
        "41.0.0.7", (b"x-forwarded-for", b"6.6.6.6"), (b"x-forwarded-proto", b"https")
    )
    seen = await scope_seen(scope)
    assert seen["client"] == ["41.0.0.7", 50000]
    assert seen["scheme"] == "http"


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(("peer", "opens"), [("127.0.0.1", True), ("41.0.0.7", False)])
async def test_a_page_served_over_tls_opens_its_socket_through_the_proxy(settings, peer, opens):
    """Behind trusted nginx the socket is wss, so the page's https origin is this site's own."""
    from channels.testing import WebsocketCommunicator

    from project.asgi import application

    settings.TRUSTED_PROXIES = NGINX
    comm = WebsocketCommunicator(
        application,
        "/ws/nowhere/",
        headers=[
            (b"host", b"care.example.org"),
            (b"origin", b"https://care.example.org"),
            (b"x-forwarded-for", b"41.0.0.7"),
            (b"x-forwarded-proto", b"https"),
        ],
    )
    comm.scope["client"] = [peer, 40000]
    connected, _ = await comm.connect()
    assert connected is opens
    await comm.disconnect()
