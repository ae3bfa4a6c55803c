"""
The whole ride flow as a new user would try it: the real server process, a
plain WebSocket client, HTTP sign-in through a stand-in SMS Portal.
"""

from __future__ import annotations

import asyncio
import json
import re
import threading
from http.server import ThreadingHTTPServer

import pytest
import requests
import websockets

from tests.people.conftest import FAKE_PASSWORD, FAKE_USERNAME, PortalState, _Handler
from tests.server import running_server

pytestmark = pytest.mark.server

JHB = (-26.2041, 28.0473)
CAPE_TOWN = (-33.9249, 18.4241)


@pytest.fixture
def portal():
    state = PortalState()
    server = ThreadingHTTPServer(("127.0.0.1", 0), type("H", (_Handler,), {"state": state}))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state.base = f"http://127.0.0.1:{server.server_address[1]}"
    yield state
    server.shutdown()
    server.server_close()


def portal_env(portal, backend):
    return {
        "SMS_BACKEND": backend,
        "SMS_PORTAL_ENDPOINT": f"{portal.base}/api5/http5.aspx",
        "SMS_PORTAL_REST_URL": f"{portal.base}/v1",
        "SMS_PORTAL_USERNAME": FAKE_USERNAME,
        "SMS_PORTAL_PASSWORD": FAKE_PASSWORD,
    }


def last_code(portal) -> str:
    for req in reversed(portal.requests):
        text = ""
        if req.path.endswith("BulkMessages"):
            text = req.json["Messages"][0]["Content"]
        elif req.path.endswith("http5.aspx"):
            params = (
                {k: v[0] for k, v in req.query.items()} | req.form
                if req.body
                else {k: v[0] for k, v in req.query.items()}
            )
            text = params.get("data1", "")
        if match := re.search(r"\b(\d{6})\b", text):
            return match.group(1)
    raise AssertionError(f"no code reached the portal: {portal.paths()}")


def sign_in(server, portal, phone) -> str:
    sent = requests.post(
        f"{server.http}/api/auth/send-otp/", json={"phone_number": phone}, timeout=10
    )
    assert sent.status_code == 200, sent.text
    assert "code" not in sent.json()
    verified = requests.post(
        f"{server.http}/api/auth/verify-otp/",
        json={"phone_number": phone, "code": last_code(portal)},
        timeout=10,
    )
    assert verified.status_code == 200, verified.text
    return verified.json()["tokens"]["access"]


async def recv(sock, wanted, limit=10):
    for _ in range(limit):
        msg = json.loads(await asyncio.wait_for(sock.recv(), 5))
        if msg["type"] == wanted:
            return msg
    raise AssertionError(f"no {wanted}")


def find_driver(at):
    return json.dumps(
        {
            "type": "find_driver",
            "pickup_latitude": at[0],
            "pickup_longitude": at[1],
            "pickup_address": "Pickup",
            "dropoff_latitude": str(at[0] + 0.02),
            "dropoff_longitude": str(at[1] + 0.02),
            "dropoff_address": "Dropoff",
        }
    )


@pytest.mark.parametrize("backend", ["smsportal", "smsportal-rest"])
def test_sign_in_by_sms_code_through_each_portal_flavour(tmp_path, portal, backend):
    """Sarah gets her code through SMS Portal (legacy or REST) and signs in."""
    with running_server(tmp_path, **portal_env(portal, backend)) as server:
        token = sign_in(server, portal, "+27 82 123 4567")
        assert token
        if backend == "smsportal":
            assert portal.requests[-1].path == "/api5/http5.aspx"
            params = {k: v[0] for k, v in portal.requests[-1].query.items()}
            params |= portal.requests[-1].form if portal.requests[-1].body else {}
            assert params["numto"] == "27821234567" and params["Type"] == "sendparam"
        else:
            assert portal.paths()[-2:] == ["/v1/Authentication", "/v1/BulkMessages"]
            destination = portal.requests[-1].json["Messages"][0]["Destination"]
            assert destination == "27821234567"
        assert last_code(portal) not in server.log()


def test_ride_flow_end_to_end(tmp_path, portal):
    """Done-when for the ride core, step by step, against the real server."""
    with running_server(tmp_path, **portal_env(portal, "smsportal-rest")) as server:
        sarah = sign_in(server, portal, "0821234567")
        michael = sign_in(server, portal, "27821234568")

        async def flow():
            base = server.ws
            # 1. connect and ping
            async with websockets.connect(f"{base}/ws/ride/e2e-anon/") as anon:
                hello = json.loads(await anon.recv())
                assert hello["type"] == "connection_established"
                await anon.send(json.dumps({"type": "ping"}))
                assert json.loads(await anon.recv())["type"] == "pong"
                # 7. anonymous find_driver is refused
                await anon.send(find_driver(JHB))
                assert json.loads(await anon.recv())["code"] == "authentication_required"

            headers = {"Authorization": f"Bearer {sarah}"}
            # 3. near Johannesburg: John Doe
            async with websockets.connect(
                f"{base}/ws/ride/e2e-1/", additional_headers=headers
            ) as s:
                await recv(s, "connection_established")
                await s.send(find_driver(JHB))
                await recv(s, "searching")
                assigned = await recv(s, "driver_assigned")
                assert assigned["driver_name"] == "John Doe"
                # 6. malformed input: an error, and the socket lives on
                await s.send("{oops")
                assert json.loads(await s.recv())["code"] == "invalid_json"
                # 4. cancel frees him
                await s.send(json.dumps({"type": "cancel_ride", "reason": "test"}))
                cancelled = await recv(s, "ride_cancelled")
                assert cancelled["cancelled_by"] == "passenger"
            async with websockets.connect(
                f"{base}/ws/ride/e2e-2/", additional_headers=headers
            ) as s:
                await s.send(find_driver(JHB))
                again = await recv(s, "driver_assigned")
                assert again["driver_name"] == "John Doe"
                await s.send(json.dumps({"type": "cancel_ride"}))
                await recv(s, "ride_cancelled")

            # 5. Cape Town: no_drivers
            async with websockets.connect(f"{base}/ws/ride/e2e-ct/?token={sarah}") as s:
                await s.send(find_driver(CAPE_TOWN))
                await recv(s, "no_drivers")
                # 8. Michael Brown goes online in Cape Town and gets the ride
                async with websockets.connect(
                    f"{base}/ws/driver/", additional_headers={"Authorization": f"Bearer {michael}"}
                ) as d:
                    hello = await recv(d, "connection_established")
                    assert hello["message"] == "Connected to driver service"
                    await d.send(json.dumps({"type": "set_status", "status": "available"}))
                    await recv(d, "status_updated")
                    await d.send(
                        json.dumps(
                            {
                                "type": "location_update",
                                "latitude": CAPE_TOWN[0] + 0.01,
                                "longitude": CAPE_TOWN[1],
                                "heading": 45,
                            }
                        )
                    )
                    ride = await recv(d, "ride_assigned")
                    assert ride["ride_id"] == "e2e-ct"
                    assert ride["passenger_name"] == "Sarah Johnson"
                    assigned = await recv(s, "driver_assigned")
                    assert assigned["driver_name"] == "Michael Brown"
                    await d.send(
                        json.dumps(
                            {
                                "type": "location_update",
                                "latitude": CAPE_TOWN[0] + 0.005,
                                "longitude": CAPE_TOWN[1],
                                "heading": 180,
                                "speed": 8,
                            }
                        )
                    )
                    moved = await recv(s, "driver_location")
                    assert moved["latitude"] == pytest.approx(CAPE_TOWN[0] + 0.005)
                    assert moved["heading"] == 180

        asyncio.run(flow())
