"""
Caregivers, accessibility and driver hand-backs, end to end: the real server
process, a plain WebSocket client per app, and the demo cast (docs/protocol.md).

Cape Town is where the tests put drivers they control: the seeded demo
drivers stand in Johannesburg and Pretoria, far beyond MATCH_RADIUS_KM.
"""

from __future__ import annotations

import asyncio
import json
import textwrap
import time
from contextlib import AsyncExitStack
from dataclasses import dataclass

import pytest
import requests
import websockets

from tests.server import Server, running_server

pytestmark = pytest.mark.server

JHB = (-26.2041, 28.0473)
PRETORIA = (-25.7479, 28.2293)
CAPE_TOWN = (-33.9249, 18.4241)

SARAH = "27821234567"
MICHAEL = "27821234568"
EMILY = "27821234569"
UNA = "27829990001"
SIPHO = "27829990002"

# How long a socket must stay silent to count as "got nothing".
QUIET_S = 1.5


# --- the cast ------------------------------------------------------------------


@dataclass(frozen=True)
class Person:
    id: int
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


CREATE_UNA = f"""
from people.models import User
User.objects.create_user(
    "{UNA}", first_name="Una", last_name="Linked", user_type="caregiver"
)
"""

CREATE_SIPHO = f"""
from people.models import DriverProfile, User
sipho = User.objects.create_user(
    "{SIPHO}", first_name="Sipho", last_name="Dlamini", user_type="driver"
)
DriverProfile.objects.create(
    user=sipho, vehicle_type="sedan", vehicle_registration="CA 555 GP", is_verified=True
)
"""


def shell(server: Server, code: str):
    """Run Python in manage.py shell; its last printed line is JSON."""
    out = server.manage("shell", "-c", textwrap.dedent(code))
    return json.loads(out.strip().splitlines()[-1])


def cast(server: Server, *phones: str, setup: str = "") -> dict[str, Person]:
    """Ids and access tokens for these phones, in one shell run (after `setup`)."""
    code = setup + textwrap.dedent(
        f"""
        import json
        from people.models import User
        from people.signin import session_issue
        out = {{}}
        for phone in {list(phones)!r}:
            user = User.objects.get(phone_number=phone)
            out[phone] = [user.pk, session_issue(user=user).access]
        print(json.dumps(out))
        """
    )
    return {phone: Person(*row) for phone, row in shell(server, code).items()}


def ride_row(server: Server, ride_id: str) -> dict | None:
    return shell(
        server,
        f"""
        import json
        from dispatch.models import Ride
        print(json.dumps(
            Ride.objects.filter(ride_id={ride_id!r})
            .values("passenger_id", "booked_by_id", "driver_id", "status").first()
        ))
        """,
    )


# --- caregiver links over REST ---------------------------------------------------


def emilys_link(server: Server, sarah: Person, emily: Person) -> int:
    """The id of Sarah's link to Emily, as Sarah's app finds it."""
    links = requests.get(f"{server.http}/api/caregivers/", headers=sarah.headers, timeout=10)
    if links.status_code == 404:
        pytest.skip(
            "/api/caregivers/ is not mounted yet; a manage.py shell change cannot "
            "reach the server's in-memory channel layer"
        )
    assert links.status_code == 200, links.text
    (link,) = [x for x in links.json() if x["caregiver"]["id"] == emily.id]
    return link["id"]


def change_link(server: Server, sarah: Person, link_id: int, **changes) -> dict:
    done = requests.patch(
        f"{server.http}/api/caregivers/{link_id}/",
        json=changes,
        headers=sarah.headers,
        timeout=10,
    )
    assert done.status_code == 200, done.text
    return done.json()


# --- the wire ------------------------------------------------------------------


async def recv(sock, wanted: str, *, limit: int = 20, timeout: float = 5.0) -> dict:
    """The next message of type `wanted`, skipping others."""
    seen = []
    for _ in range(limit):
        msg = json.loads(await asyncio.wait_for(sock.recv(), timeout))
        if msg["type"] == wanted:
            return msg
        seen.append(msg["type"])
    raise AssertionError(f"no {wanted} among {seen}")


async def recv_first(sock, *types: str, timeout: float = 5.0) -> dict:
    """The first message whose type is one of `types`, whichever comes first."""
    seen = []
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        try:
            msg = json.loads(await asyncio.wait_for(sock.recv(), max(left, 0.01)))
        except TimeoutError:
            raise AssertionError(f"none of {types} within {timeout}s; got {seen}") from None
        if msg["type"] in types:
            return msg
        seen.append(msg["type"])


async def recv_status(sock, status: str, *, timeout: float = 5.0) -> dict:
    """The next ride_status snapshot showing `status`."""
    seen = []
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        try:
            msg = json.loads(await asyncio.wait_for(sock.recv(), max(left, 0.01)))
        except TimeoutError:
            raise AssertionError(f"no ride_status {status}; got {seen}") from None
        if msg["type"] == "ride_status" and msg["status"] == status:
            return msg
        seen.append((msg["type"], msg.get("status")))


async def drain(sock, seconds: float = QUIET_S) -> list[dict]:
    """Everything that arrives within `seconds`."""
    got = []
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        try:
            got.append(json.loads(await asyncio.wait_for(sock.recv(), left)))
        except TimeoutError:
            break
    return got


async def close_code(sock, timeout: float = 5.0) -> int:
    """Read until the server closes the socket: its close code."""
    try:
        async with asyncio.timeout(timeout):
            while True:
                await sock.recv()
    except websockets.ConnectionClosed as exc:
        return exc.rcvd.code
    except TimeoutError:
        raise AssertionError(f"the socket stayed open for {timeout}s") from None


async def settle(sock) -> None:
    """A socket handles its messages in order: a pong means the earlier ones are done."""
    await sock.send(json.dumps({"type": "ping"}))
    await recv(sock, "pong")


def booking(at, **extra) -> str:
    return json.dumps(
        {
            "type": "find_driver",
            "pickup_latitude": at[0],
            "pickup_longitude": at[1],
            "pickup_address": "Pickup",
            "dropoff_latitude": at[0] + 0.02,
            "dropoff_longitude": at[1] + 0.02,
            "dropoff_address": "Clinic",
            **extra,
        }
    )


def position(lat: float, lng: float, **extra) -> str:
    return json.dumps({"type": "location_update", "latitude": lat, "longitude": lng, **extra})


async def connect(stack: AsyncExitStack, url: str, person: Person | None = None):
    headers = person.headers if person else None
    return await stack.enter_async_context(
        websockets.connect(url, additional_headers=headers, open_timeout=5)
    )


async def driver_online(stack: AsyncExitStack, server: Server, driver: Person, at):
    """A driver's app: connected, available, and its position known to the server."""
    sock = await connect(stack, f"{server.ws}/ws/driver/", driver)
    await recv(sock, "connection_established")
    await sock.send(json.dumps({"type": "set_status", "status": "available"}))
    assert (await recv(sock, "status_updated"))["status"] == "available"
    await sock.send(position(*at, heading=90))
    await settle(sock)
    return sock


async def ride_with_michael(stack, server: Server, sarah: Person, michael: Person, ride_id: str):
    """Sarah books in Cape Town, where only Michael is online: his and her sockets."""
    d = await driver_online(stack, server, michael, (CAPE_TOWN[0] + 0.01, CAPE_TOWN[1]))
    s = await connect(stack, f"{server.ws}/ws/ride/{ride_id}/", sarah)
    await s.send(booking(CAPE_TOWN))
    assert (await recv(s, "driver_assigned"))["driver_id"] == michael.id
    assert (await recv(d, "ride_assigned"))["ride_id"] == ride_id
    return d, s


# --- 1. booking for someone else ---------------------------------------------------


def test_caregiver_books_for_her_passenger_by_id_and_by_phone(tmp_path):
    """
    Emily books for Sarah by passenger_id and by phone: each ride is Sarah's,
    booked by Emily on her behalf, and Sarah's passenger socket hears of it.
    """
    with running_server(tmp_path) as server:
        people = cast(server, SARAH, EMILY)
        sarah, emily = people[SARAH], people[EMILY]

        async def flow():
            async with AsyncExitStack() as stack:
                follow = await connect(stack, f"{server.ws}/ws/passenger/", sarah)
                hello = await recv(follow, "connection_established")
                assert hello["role"] == "passenger"

                for ride_id, whom in (
                    ("care-by-id", {"passenger_id": sarah.id}),
                    ("care-by-phone", {"passenger_phone": "0821234567"}),
                ):
                    s = await connect(stack, f"{server.ws}/ws/ride/{ride_id}/", emily)
                    await recv(s, "connection_established")
                    await s.send(booking(JHB, **whom))
                    assert (await recv(s, "searching"))["ride_id"] == ride_id
                    assigned = await recv(s, "driver_assigned")
                    assert assigned["driver_name"] == "John Doe"

                    await s.send(json.dumps({"type": "get_status"}))
                    snap = await recv(s, "ride_status")
                    assert snap["passenger"]["id"] == sarah.id
                    assert snap["passenger"]["phone"] == "+27821234567"
                    assert snap["booked_by"]["id"] == emily.id
                    assert snap["booked_on_behalf"] is True

                    heard = await recv(follow, "searching")
                    assert heard["ride_id"] == ride_id
                    heard = await recv(follow, "driver_assigned")
                    assert heard["ride_id"] == ride_id

                    # The ride is Sarah's: her own ride socket opens on it.
                    own = await connect(stack, f"{server.ws}/ws/ride/{ride_id}/", sarah)
                    mine = await recv(own, "ride_status")
                    assert mine["passenger"]["id"] == sarah.id
                    assert mine["booked_by"]["id"] == emily.id

                    # One active ride per passenger: end this one before the next.
                    await s.send(json.dumps({"type": "cancel_ride", "reason": "test"}))
                    cancelled = await recv(s, "ride_cancelled")
                    assert cancelled["cancelled_by"] == "caregiver"
                    assert (await recv(follow, "ride_cancelled"))["ride_id"] == ride_id

        asyncio.run(flow())
        for ride_id in ("care-by-id", "care-by-phone"):
            row = ride_row(server, ride_id)
            assert row["passenger_id"] == sarah.id and row["booked_by_id"] == emily.id


# --- 2. following a ride --------------------------------------------------------------


def test_caregiver_follows_each_state_and_the_drivers_position(tmp_path):
    """Emily's caregiver socket sees every step of Sarah's ride and where the driver is."""
    with running_server(tmp_path) as server:
        people = cast(server, SARAH, EMILY, MICHAEL)
        sarah, emily, michael = people[SARAH], people[EMILY], people[MICHAEL]

        async def flow():
            async with AsyncExitStack() as stack:
                care = await connect(stack, f"{server.ws}/ws/caregiver/", emily)
                hello = await recv(care, "connection_established")
                assert hello["role"] == "caregiver"
                assert hello["passengers"] == [
                    {
                        "passenger_id": sarah.id,
                        "can_book_rides": True,
                        "can_view_location": True,
                        "can_receive_notifications": True,
                    }
                ]
                d = await driver_online(stack, server, michael, (CAPE_TOWN[0] + 0.01, CAPE_TOWN[1]))

                s = await connect(stack, f"{server.ws}/ws/ride/care-follow/", sarah)
                await s.send(booking(CAPE_TOWN))
                assert (await recv(s, "driver_assigned"))["driver_name"] == "Michael Brown"
                assert (await recv(d, "ride_assigned"))["ride_id"] == "care-follow"

                searching = await recv_status(care, "searching")
                assert searching["ride_id"] == "care-follow"
                assert searching["event"] == "searching"
                assigned = await recv_status(care, "assigned")
                assert assigned["event"] == "assigned"
                assert assigned["driver"]["name"] == "Michael Brown"
                assert assigned["passenger"]["id"] == sarah.id

                await d.send(position(CAPE_TOWN[0] + 0.005, CAPE_TOWN[1], heading=180, speed=9))
                moved = await recv(care, "driver_location")
                assert moved["ride_id"] == "care-follow"
                assert moved["driver_id"] == michael.id
                assert moved["latitude"] == pytest.approx(CAPE_TOWN[0] + 0.005)

                # A caregiver socket opened mid-ride gets the ride and its positions.
                late = await connect(stack, f"{server.ws}/ws/caregiver/", emily)
                current = await recv(late, "ride_status")
                assert (current["ride_id"], current["status"]) == ("care-follow", "assigned")
                await d.send(position(CAPE_TOWN[0] + 0.002, CAPE_TOWN[1]))
                assert (await recv(late, "driver_location"))["latitude"] == pytest.approx(
                    CAPE_TOWN[0] + 0.002
                )

                for step, status, event in (
                    ("arrived", "driver_arrived", "driver_arrived"),
                    ("start_trip", "in_progress", "started"),
                    ("complete_trip", "completed", "completed"),
                ):
                    await d.send(json.dumps({"type": step, "ride_id": "care-follow"}))
                    seen = await recv_status(care, status)
                    assert seen["ride_id"] == "care-follow"
                    assert seen["event"] == event
                    await recv_status(s, status)
                    await recv_status(late, status)

        asyncio.run(flow())


# --- 3. revoking a permission ------------------------------------------------------------


def test_revoked_location_permission_stops_positions_on_open_sockets(tmp_path):
    """
    Sarah takes away Emily's can_view_location: Emily's open sockets are told
    (links_updated) and get no more positions, while Sarah still does; given
    back, the positions flow again.
    """
    with running_server(tmp_path) as server:
        people = cast(server, SARAH, EMILY, MICHAEL)
        sarah, emily, michael = people[SARAH], people[EMILY], people[MICHAEL]
        link_id = emilys_link(server, sarah, emily)

        def set_view_location(allowed: bool) -> None:
            assert (
                change_link(server, sarah, link_id, can_view_location=allowed)["can_view_location"]
                is allowed
            )

        async def flow():
            async with AsyncExitStack() as stack:
                care = await connect(stack, f"{server.ws}/ws/caregiver/", emily)
                await recv(care, "connection_established")
                follow = await connect(stack, f"{server.ws}/ws/passenger/", sarah)
                await recv(follow, "connection_established")
                d = await driver_online(stack, server, michael, (CAPE_TOWN[0] + 0.01, CAPE_TOWN[1]))
                s = await connect(stack, f"{server.ws}/ws/ride/care-revoke/", sarah)
                await s.send(booking(CAPE_TOWN))
                await recv(s, "driver_assigned")
                await recv(d, "ride_assigned")
                await recv_status(care, "assigned")
                # Emily also watches on the ride's own socket.
                watch = await connect(stack, f"{server.ws}/ws/ride/care-revoke/", emily)
                await recv(watch, "ride_status")

                await d.send(position(CAPE_TOWN[0] + 0.008, CAPE_TOWN[1]))
                for sock in (care, watch, follow, s):
                    await recv(sock, "driver_location")

                await asyncio.to_thread(set_view_location, False)
                updated = await recv(care, "links_updated")
                assert updated["passengers"] == [
                    {
                        "passenger_id": sarah.id,
                        "can_book_rides": True,
                        "can_view_location": False,
                        "can_receive_notifications": True,
                    }
                ]
                await settle(watch)

                for i in range(3):
                    await d.send(position(CAPE_TOWN[0] + 0.006 - i * 0.001, CAPE_TOWN[1]))
                for sock in (follow, s):
                    for _ in range(3):
                        await recv(sock, "driver_location")
                for sock in (care, watch):
                    leaked = [m for m in await drain(sock) if m["type"] == "driver_location"]
                    assert leaked == []

                # Notifications are a separate permission: still on.
                await d.send(json.dumps({"type": "arrived"}))
                arrived = await recv_status(care, "driver_arrived")
                assert arrived["ride_id"] == "care-revoke"
                await d.send(position(CAPE_TOWN[0] + 0.001, CAPE_TOWN[1]))
                await recv(s, "driver_location")
                got = await drain(care)
                assert [m for m in got if m["type"] == "driver_location"] == []

                await asyncio.to_thread(set_view_location, True)
                restored = await recv(care, "links_updated")
                assert restored["passengers"][0]["can_view_location"] is True
                await settle(watch)
                await d.send(position(CAPE_TOWN[0], CAPE_TOWN[1], heading=10))
                for sock in (care, watch):
                    back = await recv(sock, "driver_location")
                    assert back["latitude"] == pytest.approx(CAPE_TOWN[0])

        asyncio.run(flow())


def test_revoked_link_closes_the_caregivers_ride_socket_and_stops_everything(tmp_path):
    """
    Sarah ends the link: Emily's ride socket closes with 4403, her caregiver
    socket learns she follows nobody and hears nothing more, and she can no
    longer book for Sarah.
    """
    with running_server(tmp_path) as server:
        people = cast(server, SARAH, EMILY, MICHAEL)
        sarah, emily, michael = people[SARAH], people[EMILY], people[MICHAEL]
        link_id = emilys_link(server, sarah, emily)

        async def flow():
            async with AsyncExitStack() as stack:
                care = await connect(stack, f"{server.ws}/ws/caregiver/", emily)
                await recv(care, "connection_established")
                d, s = await ride_with_michael(stack, server, sarah, michael, "care-unlink")
                await recv_status(care, "assigned")
                watch = await connect(stack, f"{server.ws}/ws/ride/care-unlink/", emily)
                await recv(watch, "ride_status")

                gone = await asyncio.to_thread(
                    requests.delete,
                    f"{server.http}/api/caregivers/{link_id}/",
                    headers=sarah.headers,
                    timeout=10,
                )
                assert gone.status_code == 200, gone.text
                assert gone.json()["status"] == "revoked"
                assert (await recv(care, "links_updated"))["passengers"] == []
                assert await close_code(watch) == 4403

                await d.send(position(CAPE_TOWN[0] + 0.004, CAPE_TOWN[1]))
                await recv(s, "driver_location")
                await d.send(json.dumps({"type": "arrived"}))
                await recv_status(s, "driver_arrived")
                assert await drain(care) == []

                book = await connect(stack, f"{server.ws}/ws/ride/care-unlinked-book/", emily)
                await recv(book, "connection_established")
                await book.send(booking(JHB, passenger_id=sarah.id))
                assert (await recv(book, "error"))["code"] == "forbidden"

        asyncio.run(flow())
        assert ride_row(server, "care-unlinked-book") is None


def test_location_permission_alone_streams_positions_of_a_new_ride(tmp_path):
    """
    Emily may see where Sarah is but has turned status notifications off:
    no ride_status reaches her caregiver socket, driver_location does, also
    for a ride booked after the socket opened.
    """
    with running_server(tmp_path) as server:
        people = cast(server, SARAH, EMILY, MICHAEL)
        sarah, emily, michael = people[SARAH], people[EMILY], people[MICHAEL]
        link_id = emilys_link(server, sarah, emily)
        change_link(server, sarah, link_id, can_receive_notifications=False)

        async def flow():
            async with AsyncExitStack() as stack:
                care = await connect(stack, f"{server.ws}/ws/caregiver/", emily)
                hello = await recv(care, "connection_established")
                assert hello["passengers"][0]["can_view_location"] is True
                assert hello["passengers"][0]["can_receive_notifications"] is False
                d, s = await ride_with_michael(stack, server, sarah, michael, "care-quiet")
                await d.send(position(CAPE_TOWN[0] + 0.004, CAPE_TOWN[1]))
                await recv(s, "driver_location")
                got = await drain(care, 3)
                assert [m for m in got if m["type"] == "ride_status"] == []
                assert [m["type"] for m in got] == ["driver_location"], got

        asyncio.run(flow())


def test_caregiver_without_location_permission_gets_no_driver_position_in_snapshots(
    tmp_path,
):
    """
    Without can_view_location Emily's ride snapshots carry no driver
    position on any socket, just as GET /api/rides/<id>/ hides it.
    """
    with running_server(tmp_path) as server:
        people = cast(server, SARAH, EMILY, MICHAEL)
        sarah, emily, michael = people[SARAH], people[EMILY], people[MICHAEL]
        link_id = emilys_link(server, sarah, emily)
        change_link(server, sarah, link_id, can_view_location=False)

        async def flow():
            async with AsyncExitStack() as stack:
                care = await connect(stack, f"{server.ws}/ws/caregiver/", emily)
                await recv(care, "connection_established")
                d, s = await ride_with_michael(stack, server, sarah, michael, "care-hidden")
                rest = await asyncio.to_thread(
                    requests.get,
                    f"{server.http}/api/rides/care-hidden/",
                    headers=emily.headers,
                    timeout=10,
                )
                assert rest.status_code == 200, rest.text
                assert rest.json()["driver"]["latitude"] is None

                leaks = []
                assigned = await recv_status(care, "assigned")
                leaks.append(("caregiver socket, assigned", assigned["driver"]))
                watch = await connect(stack, f"{server.ws}/ws/ride/care-hidden/", emily)
                snap = await recv(watch, "ride_status")
                leaks.append(("ride socket, on connect", snap["driver"]))
                await d.send(json.dumps({"type": "arrived"}))
                arrived = await recv_status(care, "driver_arrived")
                leaks.append(("caregiver socket, arrived", arrived["driver"]))
                arrived = await recv_status(watch, "driver_arrived")
                leaks.append(("ride socket, arrived", arrived["driver"]))
                shown = [
                    (where, card["latitude"], card["longitude"])
                    for where, card in leaks
                    if card["latitude"] is not None or card["longitude"] is not None
                ]
                assert shown == []

        asyncio.run(flow())


# --- 4. booking without a link ------------------------------------------------------------


def test_caregiver_without_a_link_cannot_book_and_nothing_is_written(tmp_path):
    """Una has no link to Sarah: booking for her answers forbidden and writes nothing."""
    with running_server(tmp_path) as server:
        people = cast(server, SARAH, UNA, setup=CREATE_UNA)
        sarah, una = people[SARAH], people[UNA]

        async def flow():
            async with AsyncExitStack() as stack:
                follow = await connect(stack, f"{server.ws}/ws/passenger/", sarah)
                await recv(follow, "connection_established")
                for ride_id, whom in (
                    ("una-by-id", {"passenger_id": sarah.id}),
                    ("una-by-phone", {"passenger_phone": "+27 82 123 4567"}),
                ):
                    s = await connect(stack, f"{server.ws}/ws/ride/{ride_id}/", una)
                    await recv(s, "connection_established")
                    await s.send(booking(JHB, **whom))
                    refused = await recv_first(
                        s, "error", "searching", "driver_assigned", "no_drivers"
                    )
                    assert refused["type"] == "error"
                    assert refused["code"] == "forbidden"
                    # The socket lives on, and there is no such ride.
                    await s.send(json.dumps({"type": "get_status"}))
                    assert (await recv(s, "error"))["code"] == "not_found"
                # Sarah's app heard of nothing.
                assert await drain(follow) == []

        asyncio.run(flow())
        for ride_id in ("una-by-id", "una-by-phone"):
            assert ride_row(server, ride_id) is None
        counts = shell(
            server,
            """
            import json
            from dispatch.models import Ride, RideEvent
            print(json.dumps([Ride.objects.count(), RideEvent.objects.count()]))
            """,
        )
        assert counts == [0, 0]


# --- 5. wheelchairs ------------------------------------------------------------------


def test_wheelchair_ride_gets_only_a_wheelchair_accessible_vehicle(tmp_path):
    """
    Near Johannesburg a wheelchair user gets neither John (sedan) nor Jane
    (SUV) but no_drivers, Mike's accessible van being ~55 km off in
    Pretoria, whether the ride or her profile says so; a sedan coming online
    beside a waiting wheelchair ride does not get it; near Pretoria she gets
    Mike, whose app is told of the wheelchair.
    """
    with running_server(tmp_path) as server:
        people = cast(server, SARAH, MICHAEL, "27123456791")
        sarah, michael, mike = people[SARAH], people[MICHAEL], people["27123456791"]

        async def book_unserved(stack, ride_id: str, at, **extra):
            s = await connect(stack, f"{server.ws}/ws/ride/{ride_id}/", sarah)
            await s.send(booking(at, **extra))
            await recv(s, "searching")
            outcome = await recv_first(s, "driver_assigned", "no_drivers")
            assert outcome["type"] == "no_drivers", outcome.get("driver_name")
            await s.send(json.dumps({"type": "get_status"}))
            snap = await recv(s, "ride_status")
            assert snap["needs_wheelchair"] is True
            assert snap["driver"] is None and snap["no_driver_found"] is True
            return s

        async def cancel(s) -> None:
            await s.send(json.dumps({"type": "cancel_ride", "reason": "test"}))
            await recv(s, "ride_cancelled")

        async def flow():
            async with AsyncExitStack() as stack:
                await cancel(await book_unserved(stack, "wc-jhb", JHB, needs_wheelchair=True))

                # No flag on the ride: her profile decides.
                profile = await asyncio.to_thread(
                    requests.patch,
                    f"{server.http}/api/auth/profile/",
                    json={"needs_wheelchair": True},
                    headers=sarah.headers,
                    timeout=10,
                )
                assert profile.status_code == 200, profile.text
                await cancel(await book_unserved(stack, "wc-profile", JHB))

                s = await book_unserved(stack, "wc-cpt", CAPE_TOWN)
                sedan = await driver_online(
                    stack, server, michael, (CAPE_TOWN[0] + 0.01, CAPE_TOWN[1])
                )
                await sedan.send(position(CAPE_TOWN[0] + 0.005, CAPE_TOWN[1]))
                await settle(sedan)
                assert [m for m in await drain(sedan) if m["type"] == "ride_assigned"] == []
                assert [m for m in await drain(s, 0.5) if m["type"] == "driver_assigned"] == []
                await cancel(s)

                s = await connect(stack, f"{server.ws}/ws/ride/wc-pta/", sarah)
                await s.send(booking(PRETORIA, needs_wheelchair="true"))
                await recv(s, "searching")
                outcome = await recv_first(s, "driver_assigned", "no_drivers")
                assert outcome["type"] == "driver_assigned"
                assert outcome["driver_name"] == "Mike Johnson"
                assert outcome["vehicle_type"] == "wheelchair_accessible"
                van = await connect(stack, f"{server.ws}/ws/driver/", mike)
                carried = await recv(van, "ride_assigned")
                assert carried["ride_id"] == "wc-pta"
                assert carried["needs"]["wheelchair"] is True

        asyncio.run(flow())


# --- 6. a driver gives the ride back ------------------------------------------------------


def test_driver_cancelling_after_assignment_rematches_to_the_next_driver(tmp_path):
    """
    Michael, the nearer, gives the ride back (flat tyre): he is told the ride
    is cancelled for him, and the passenger sees searching and then Sipho.
    """
    with running_server(tmp_path) as server:
        people = cast(server, SARAH, MICHAEL, SIPHO, setup=CREATE_SIPHO)
        sarah, michael, sipho = people[SARAH], people[MICHAEL], people[SIPHO]

        async def flow():
            async with AsyncExitStack() as stack:
                near = await driver_online(
                    stack, server, michael, (CAPE_TOWN[0] + 0.01, CAPE_TOWN[1])
                )
                far = await driver_online(stack, server, sipho, (CAPE_TOWN[0] + 0.03, CAPE_TOWN[1]))
                s = await connect(stack, f"{server.ws}/ws/ride/hand-back/", sarah)
                await s.send(booking(CAPE_TOWN))
                first = await recv(s, "driver_assigned")
                assert first["driver_id"] == michael.id
                assert (await recv(near, "ride_assigned"))["ride_id"] == "hand-back"

                await near.send(json.dumps({"type": "cancel_ride", "reason": "flat_tyre"}))
                released = await recv(near, "ride_cancelled")
                assert released["ride_id"] == "hand-back"
                assert released["cancelled_by"] == "driver"
                assert released["reason"] == "flat_tyre"

                again = await recv_first(s, "searching", "driver_assigned", "no_drivers")
                assert again["type"] == "searching"
                second = await recv_first(s, "driver_assigned", "no_drivers")
                assert second["type"] == "driver_assigned"
                assert second["driver_id"] == sipho.id
                assert second["driver_name"] == "Sipho Dlamini"
                assert second["version"] > first["version"]
                taken = await recv(far, "ride_assigned")
                assert taken["ride_id"] == "hand-back"
                assert taken["passenger"]["id"] == sarah.id

                # Michael is not asked again; his position no longer reaches
                # Sarah, Sipho's does.
                assert [m for m in await drain(near) if m["type"] == "ride_assigned"] == []
                await near.send(position(CAPE_TOWN[0] + 0.009, CAPE_TOWN[1]))
                await settle(near)
                await far.send(position(CAPE_TOWN[0] + 0.02, CAPE_TOWN[1]))
                await settle(far)
                moved = [m for m in await drain(s, 1.0) if m["type"] == "driver_location"]
                assert [m["driver_id"] for m in moved] == [sipho.id]

        asyncio.run(flow())
        row = ride_row(server, "hand-back")
        assert (row["status"], row["driver_id"]) == ("assigned", sipho.id)


# --- 7. offer mode -----------------------------------------------------------------


def test_offer_mode_decline_timeout_and_no_driver_left(tmp_path):
    """
    With DISPATCH_MODE=offer the nearest driver is asked first; a decline or
    silence passes the ride on, an accept assigns it, and when nobody is
    left the passenger hears no_drivers.
    """
    with running_server(tmp_path, DISPATCH_MODE="offer", OFFER_TIMEOUT_S="3") as server:
        people = cast(server, SARAH, MICHAEL, SIPHO, setup=CREATE_SIPHO)
        sarah, michael, sipho = people[SARAH], people[MICHAEL], people[SIPHO]
        near_at = (CAPE_TOWN[0] + 0.01, CAPE_TOWN[1])
        far_at = (CAPE_TOWN[0] + 0.03, CAPE_TOWN[1])

        async def flow():
            async with AsyncExitStack() as stack:
                near = await driver_online(stack, server, michael, near_at)
                far = await driver_online(stack, server, sipho, far_at)

                # Declined by the nearest, accepted by the next.
                s = await connect(stack, f"{server.ws}/ws/ride/offer-1/", sarah)
                await s.send(booking(CAPE_TOWN))
                await recv(s, "searching")
                offer = await recv(near, "ride_request")
                assert offer["ride_id"] == "offer-1"
                assert offer["timeout_s"] <= 3 and offer["expires_at"]
                assert offer["pickup_distance_km"] == pytest.approx(1.1, abs=0.1)
                await near.send(json.dumps({"type": "decline_ride", "ride_id": "offer-1"}))
                await recv(near, "ride_declined")
                offer = await recv(far, "ride_request")
                assert offer["ride_id"] == "offer-1"
                await far.send(json.dumps({"type": "accept_ride", "ride_id": "offer-1"}))
                assigned = await recv_first(s, "driver_assigned", "no_drivers")
                assert assigned["type"] == "driver_assigned"
                assert assigned["driver_id"] == sipho.id
                assert (await recv(far, "ride_assigned"))["ride_id"] == "offer-1"
                await s.send(json.dumps({"type": "cancel_ride", "reason": "test"}))
                await recv(s, "ride_cancelled")
                await recv(far, "ride_cancelled")

                # Nobody answers: each offer times out and passes on, then no_drivers.
                for sock, at in ((near, near_at), (far, far_at)):
                    await sock.send(position(*at))
                    await settle(sock)
                s = await connect(stack, f"{server.ws}/ws/ride/offer-2/", sarah)
                await s.send(booking(CAPE_TOWN))
                await recv(s, "searching")
                first = await recv(near, "ride_request")
                asked_at = time.monotonic()
                assert first["ride_id"] == "offer-2"
                second = await recv(far, "ride_request", timeout=10)
                assert second["ride_id"] == "offer-2"
                assert time.monotonic() - asked_at >= 2.5
                ended = await recv_first(s, "no_drivers", "driver_assigned", timeout=10)
                assert ended["type"] == "no_drivers"
                assert ended["ride_id"] == "offer-2"
                # Too late: the expired offer cannot be taken.
                await far.send(json.dumps({"type": "accept_ride", "ride_id": "offer-2"}))
                assert (await recv(far, "error"))["code"] in ("invalid_state", "invalid_request")

        asyncio.run(flow())
        row = ride_row(server, "offer-2")
        assert (row["status"], row["driver_id"]) == ("searching", None)


# --- 8. the API docs -------------------------------------------------------------------


def test_api_docs_and_schema_are_served(tmp_path):
    """/api/docs is an HTML page; /api/openapi.json lists the app endpoints."""
    with running_server(tmp_path) as server:
        docs = requests.get(f"{server.http}/api/docs", timeout=10)
        assert docs.status_code == 200
        assert docs.headers["Content-Type"].startswith("text/html")
        assert "<html" in docs.text.lower()
        schema = requests.get(f"{server.http}/api/openapi.json", timeout=10)
        assert schema.status_code == 200
        paths = schema.json()["paths"]
        assert "/api/auth/send-otp/" in paths
        missing = [
            prefix
            for prefix in ("/api/caregivers/", "/api/rides/")
            if not any(p.startswith(prefix) for p in paths)
        ]
        if missing:
            pytest.skip(f"not in the schema yet (being built): {', '.join(missing)}")
        assert "/api/caregivers/" in paths
