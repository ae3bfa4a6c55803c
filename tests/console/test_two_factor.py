"""
Staff sign in with a password and then a code from their authenticator app,
enrolled by QR code at the first sign-in: the console's pages, its socket
and the admin all wait for the code.
"""

from __future__ import annotations

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.test import Client
from django.urls import reverse
from django_otp.oath import TOTP
from django_otp.plugins.otp_totp.models import TOTPDevice

from dispatch import rides
from people.models import AuditEvent
from project.asgi import application
from tests.conftest import staff_login

pytestmark = pytest.mark.django_db

BOARD = reverse("console:board")
TWO_FACTOR = reverse("console:two_factor")
PASSWORD = "pw-for-tests-only"


def code_for(device: TOTPDevice, steps_ahead: int = 0) -> str:
    """What the authenticator app shows now (or `steps_ahead` steps later)."""
    totp = TOTP(device.bin_key, device.step, device.t0, device.digits, device.drift)
    totp.drift += steps_ahead
    return f"{totp.token():0{device.digits}d}"


def password_only(user) -> Client:
    client = Client()
    response = client.post(
        reverse("console:login"), {"username": user.phone_number, "password": PASSWORD}
    )
    assert response.status_code == 302, response.content.decode()[-1500:]
    return client


def test_a_password_alone_leads_to_the_code_page_not_the_board(dispatcher, staff_groups):
    """A staff password alone reaches no console page, only the code page."""
    client = Client()
    response = client.post(
        reverse("console:login"),
        {"username": dispatcher.phone_number, "password": PASSWORD, "next": BOARD},
    )
    assert response["Location"] == f"{TWO_FACTOR}?next=%2Fconsole%2F"
    response = client.get("/console/rides/1/")
    assert response.status_code == 302
    assert response["Location"] == f"{TWO_FACTOR}?next=%2Fconsole%2Frides%2F1%2F"
    htmx = client.get("/console/regions/pending-rides/", headers={"HX-Request": "true"})
    assert htmx["HX-Redirect"] == f"{TWO_FACTOR}?next=%2Fconsole%2F"
    assert client.post("/console/links/new/", {}).status_code == 302


def test_the_first_sign_in_enrols_an_authenticator_by_qr_code(dispatcher, staff_groups):
    """A new staff member's first sign-in enrols an authenticator by QR code, then goes in."""
    client = password_only(dispatcher)
    page = client.get(TWO_FACTOR, {"next": BOARD})
    html = page.content.decode()
    assert page.status_code == 200
    assert 'src="data:image/svg+xml' in html and "<script" not in html
    device = TOTPDevice.objects.get(user=dispatcher)
    assert not device.confirmed
    # The same QR code on a reload, not a new secret each time.
    assert client.get(TWO_FACTOR).content.decode().count("data:image/svg+xml") == 1
    assert TOTPDevice.objects.filter(user=dispatcher).count() == 1

    response = client.post(TWO_FACTOR, {"code": code_for(device), "next": BOARD})
    assert response.status_code == 302 and response["Location"] == BOARD
    device.refresh_from_db()
    assert device.confirmed
    assert client.get(BOARD).status_code == 200
    enrolled = AuditEvent.objects.get(action="staff_2fa.enrolled")
    assert enrolled.actor == dispatcher and enrolled.subject_id == str(dispatcher.pk)


def test_the_secret_is_shown_for_typing_in_and_makes_the_same_codes(dispatcher, staff_groups):
    """Staff without a camera can type the shown secret, which gives the same codes."""
    import base64

    client = password_only(dispatcher)
    html = client.get(TWO_FACTOR).content.decode()
    device = TOTPDevice.objects.get(user=dispatcher)
    secret = html.split('data-totp-secret="')[1].split('"')[0].replace(" ", "")
    assert base64.b32decode(secret) == device.bin_key


def test_each_sign_in_enrols_a_secret_of_its_own(dispatcher, staff_groups):
    """
    One who has the password alone and looked at a QR code cannot use what
    the staff member later enrols: each sign-in is shown its own secret, and
    enrolling one voids the others.
    """
    import base64

    def shown(client) -> bytes:
        html = client.get(TWO_FACTOR).content.decode()
        return base64.b32decode(html.split('data-totp-secret="')[1].split('"')[0].replace(" ", ""))

    intruder, staff = password_only(dispatcher), password_only(dispatcher)
    seen, key = shown(intruder), shown(staff)
    assert seen != key
    assert shown(staff) == key  # a reload shows the same one
    totp = TOTP(key)
    assert staff.post(TWO_FACTOR, {"code": f"{totp.token():06d}", "next": BOARD}).status_code == 302
    assert list(TOTPDevice.objects.filter(user=dispatcher).values_list("confirmed", flat=True)) == [
        True
    ]
    stolen = TOTP(seen)
    intruder.post(TWO_FACTOR, {"code": f"{stolen.token():06d}", "next": BOARD})
    assert intruder.get(BOARD).status_code != 200


def test_an_enrolled_authenticator_is_asked_for_its_code_and_shown_no_qr_code(
    dispatcher, staff_groups
):
    """Once enrolled, staff are asked for a code and are never shown the secret again."""
    device = TOTPDevice.objects.create(user=dispatcher, name="phone", confirmed=True)
    client = password_only(dispatcher)
    page = client.get(TWO_FACTOR).content.decode()
    assert "data:image/svg+xml" not in page and "data-totp-secret" not in page
    response = client.post(TWO_FACTOR, {"code": code_for(device)})
    assert response["Location"] == BOARD
    assert client.get(BOARD).status_code == 200


def test_a_wrong_code_is_refused_then_throttled(dispatcher, staff_groups):
    """A wrong code is refused, and repeated guessing is slowed down."""
    device = TOTPDevice.objects.create(user=dispatcher, name="phone", confirmed=True)
    client = password_only(dispatcher)
    wrong = "000000" if code_for(device) != "000000" else "111111"
    page = client.post(TWO_FACTOR, {"code": wrong})
    assert page.status_code == 200 and "That code is not right" in page.content.decode()
    # django-otp backs off after a failure: even the right code waits.
    page = client.post(TWO_FACTOR, {"code": code_for(device)})
    assert "Too many wrong codes. Wait" in page.content.decode()
    assert client.get(BOARD).status_code == 302


def test_a_used_code_does_not_sign_in_a_second_time(dispatcher, staff_groups):
    """A code that has been used cannot sign in a second session."""
    device = TOTPDevice.objects.create(user=dispatcher, name="phone", confirmed=True)
    code = code_for(device)
    assert password_only(dispatcher).post(TWO_FACTOR, {"code": code}).status_code == 302
    again = password_only(dispatcher).post(TWO_FACTOR, {"code": code})
    assert again.status_code == 200 and "That code is not right" in again.content.decode()


def test_the_code_page_sends_nowhere_but_this_site(dispatcher, staff_groups):
    """The code page never redirects to another site."""
    device = TOTPDevice.objects.create(user=dispatcher, name="phone", confirmed=True)
    client = password_only(dispatcher)
    response = client.post(TWO_FACTOR, {"code": code_for(device), "next": "https://evil.example/"})
    assert response["Location"] == BOARD


def test_support_staff_land_on_the_caregiver_links_after_their_code(support):
    """Support staff land on the caregiver links page after their code."""
    device = TOTPDevice.objects.create(user=support, name="phone", confirmed=True)
    client = Client()
    response = client.post(
        reverse("console:login"), {"username": support.phone_number, "password": PASSWORD}
    )
    assert response["Location"] == f"{TWO_FACTOR}?next=%2Fconsole%2Flinks%2F"
    response = client.post(TWO_FACTOR, {"code": code_for(device), "next": "/console/links/"})
    assert response["Location"] == reverse("console:links")


def test_app_users_have_no_code_page(make_user):
    """Passengers, drivers and caregivers have no staff code page."""
    client = Client()
    client.force_login(make_user("passenger"))
    assert client.get(TWO_FACTOR).status_code == 403


# --- the admin -------------------------------------------------------------------


def test_the_admin_sends_a_password_only_session_to_the_code_page(dispatcher, staff_groups):
    """The admin sends a session that has only a password to the code page, then back."""
    device = TOTPDevice.objects.create(user=dispatcher, name="phone", confirmed=True)
    client = Client()
    client.force_login(dispatcher)
    response = client.get("/admin/people/user/")
    assert response.status_code == 302
    assert response["Location"] == "/admin/login/?next=/admin/people/user/"
    response = client.get(response["Location"])
    assert response["Location"] == f"{TWO_FACTOR}?next=%2Fadmin%2Fpeople%2Fuser%2F"
    response = client.post(TWO_FACTOR, {"code": code_for(device), "next": "/admin/people/user/"})
    assert response["Location"] == "/admin/people/user/"
    assert client.get("/admin/people/user/").status_code == 200


def test_the_admin_lets_in_a_session_that_passed_its_code(dispatcher, staff_groups):
    """A staff session that passed its code opens the admin."""
    assert staff_login(Client(), dispatcher).get("/admin/").status_code == 200


# --- the switch --------------------------------------------------------------------


def test_staff_2fa_off_lets_a_password_in_while_debug_is_on(dispatcher, staff_groups, settings):
    """STAFF_2FA=0 skips the code only on a DEBUG (developer) server."""
    settings.DEBUG, settings.STAFF_2FA = True, False
    client = password_only(dispatcher)
    assert client.get(BOARD).status_code == 200
    assert client.get("/admin/").status_code == 200
    assert client.get(TWO_FACTOR)["Location"] == BOARD


def test_staff_2fa_off_is_ignored_while_debug_is_off(dispatcher, staff_groups, settings):
    """STAFF_2FA=0 cannot switch off the second factor in production."""
    settings.DEBUG, settings.STAFF_2FA = False, False
    client = password_only(dispatcher)
    assert client.get(BOARD)["Location"].startswith(TWO_FACTOR)


# --- sockets signed in by the session cookie ---------------------------------------


@pytest.mark.django_db(transaction=True)
async def test_the_console_socket_waits_for_the_code(dispatcher, session_cookie):
    """The console's live socket opens only for a session that passed its code."""
    cookie = database_sync_to_async(session_cookie)
    for second_factor, accepted in ((False, False), (True, True)):
        headers = await cookie(dispatcher, second_factor=second_factor)
        comm = WebsocketCommunicator(application, "/ws/console/", headers=headers)
        assert (await comm.connect())[0]
        if accepted:
            assert await comm.receive_from(timeout=3)
        else:
            closed = await comm.receive_output(timeout=3)
            assert closed == {"type": "websocket.close", "code": 4403}
        await comm.disconnect()


@pytest.mark.django_db(transaction=True)
async def test_a_password_only_session_is_nobody_to_the_ride_socket(
    dispatcher, passenger, session_cookie
):
    """A staff session without its code is refused on a ride socket; with it, let in."""
    await database_sync_to_async(rides.ride_request)(
        ride_id="2fa-1",
        passenger=passenger,
        booked_by=passenger,
        pickup_latitude=-26.2,
        pickup_longitude=28.04,
        dropoff_latitude=-26.1,
        dropoff_longitude=28.0,
    )
    cookie = database_sync_to_async(session_cookie)
    comm = WebsocketCommunicator(
        application, "/ws/ride/2fa-1/", headers=await cookie(dispatcher, second_factor=False)
    )
    assert (await comm.connect())[0]
    assert (await comm.receive_json_from(timeout=3))["code"] == "forbidden"
    await comm.disconnect()
    comm = WebsocketCommunicator(application, "/ws/ride/2fa-1/", headers=await cookie(dispatcher))
    assert (await comm.connect())[0]
    assert (await comm.receive_json_from(timeout=3))["type"] == "connection_established"
    await comm.disconnect()


@pytest.mark.django_db(transaction=True)
async def test_a_reset_authenticator_closes_its_open_consoles(dispatcher, support, session_cookie):
    """Resetting a staff member's authenticator closes their open console sockets (4401)."""
    from people.staff_signin import totp_reset

    headers = await database_sync_to_async(session_cookie)(dispatcher)
    comm = WebsocketCommunicator(application, "/ws/console/", headers=headers)
    assert (await comm.connect())[0]
    await database_sync_to_async(totp_reset)(staff_member=dispatcher, actor=support)
    while (output := await comm.receive_output(timeout=3))["type"] != "websocket.close":
        pass
    assert output["code"] == 4401
    await comm.disconnect()
