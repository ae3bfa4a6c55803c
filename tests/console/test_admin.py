"""The support admin: who gets in, what they see, and actions through services."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse
from django_otp.plugins.otp_totp.models import TOTPDevice

from dispatch import matching, rides
from dispatch.models import DriverState, DriverStatus
from people import access, caregivers
from people.models import ApiSession, AuditEvent, DriverProfile, PhoneOTPDevice, User
from tests.conftest import JHB, staff_login
from tests.dispatch.test_driver_off_duty import on_board

pytestmark = pytest.mark.django_db

ACTION = "_selected_action"


def signed_in(user) -> Client:
    return staff_login(Client(), user)


@pytest.fixture
def support_client(support):
    return signed_in(support)


def test_staff_groups_reach_the_admin_and_app_users_do_not(dispatcher, support, make_user):
    """Dispatchers and support reach the admin; an app user is sent to its login."""
    for user in (dispatcher, support):
        assert signed_in(user).get("/admin/").status_code == 200
    app_user = make_user("passenger")
    response = signed_in(app_user).get("/admin/")
    assert response.status_code == 302 and "/admin/login/" in response["Location"]


def test_dispatchers_see_rides_with_their_timeline(console, make_driver, passenger, dispatcher):
    """Dispatchers list rides by status with status pills, and see each ride's timeline."""
    ride = rides.ride_request(
        ride_id="adm-1",
        passenger=passenger,
        booked_by=passenger,
        pickup_latitude=-26.2,
        pickup_longitude=28.04,
        dropoff_latitude=-26.1,
        dropoff_longitude=28.0,
    )
    driver = make_driver(-26.2, 28.041)
    matching.ride_assign(ride=ride, driver_id=driver.pk, actor=dispatcher, role="dispatcher")
    listing = console.get("/admin/dispatch/ride/?status__exact=assigned")
    assert listing.status_code == 200 and b"adm-1" in listing.content
    assert b"Driver assigned" in listing.content  # the status pill
    page = console.get(reverse("admin:dispatch_ride_change", args=[ride.pk]))
    html = page.content.decode()
    assert page.status_code == 200
    assert "timeline" in html.lower() and "requested" in html and "assigned" in html
    assert console.get("/admin/dispatch/ride/?created_at__day=1").status_code == 200


def test_dispatchers_see_drivers_and_users_but_not_sign_in_devices(console):
    """Dispatchers see drivers and users, but not the sign-in devices."""
    assert console.get("/admin/people/driverprofile/").status_code == 200
    assert console.get("/admin/people/user/").status_code == 200
    assert console.get("/admin/people/phoneotpdevice/").status_code == 403


def test_users_are_found_by_phone_however_it_is_written(support_client, make_user):
    """A user is found by their phone number in local spelling; filters narrow by type."""
    sarah = make_user("passenger", first_name="Sarah", phone="27821234567")
    make_user("driver", first_name="Other")
    response = support_client.get("/admin/people/user/", {"q": "082 123 4567"})
    assert sarah.display_phone.encode() in response.content
    assert b"Other" not in response.content
    response = support_client.get("/admin/people/user/", {"user_type__exact": "driver"})
    assert b"Other" in response.content and b"Sarah" not in response.content


def test_support_cannot_touch_staff_accounts_or_grant_staff_rights(
    support_client, dispatcher, passenger
):
    """Support can edit app users but not staff, and cannot make anyone staff."""
    page = support_client.get(reverse("admin:people_user_change", args=[dispatcher.pk]))
    assert page.status_code == 200 and b'name="_save"' not in page.content
    password = reverse("admin:auth_user_password_change", args=[dispatcher.pk])
    assert support_client.get(password).status_code == 403
    response = support_client.post(
        reverse("admin:people_user_change", args=[passenger.pk]),
        {
            "phone_number": passenger.phone_number,
            "first_name": "Sara",
            "last_name": "Johnson",
            "user_type": "passenger",
            "is_active": "on",
            "is_staff": "on",
            "is_superuser": "on",
            "date_joined_0": "2026-01-01",
            "date_joined_1": "10:00:00",
            **{
                f"{prefix}-{key}": value
                for prefix in ("passenger_profile", "caregiver_links", "api_sessions")
                for key, value in (("TOTAL_FORMS", "0"), ("INITIAL_FORMS", "0"))
            },
        },
    )
    assert response.status_code == 302, response.content.decode()[-2000:]
    passenger.refresh_from_db()
    assert passenger.first_name == "Sara"
    assert not passenger.is_staff and not passenger.is_superuser


def test_a_passengers_page_shows_their_profile_and_caregivers(
    support_client, passenger, make_user, make_link
):
    """A passenger's admin page shows their needs and their caregivers."""
    make_link(passenger, make_user("caregiver", first_name="Emily", last_name="Davis"))
    page = support_client.get(reverse("admin:people_user_change", args=[passenger.pk]))
    html = page.content.decode()
    assert page.status_code == 200
    assert "Needs wheelchair" in html and "Emily Davis" in html


def test_support_verifies_drivers_through_the_audited_service(support_client, support, make_user):
    """Support verifies a driver through the audited service, and only once."""
    driver = make_user("driver")
    profile = DriverProfile.objects.create(user=driver, is_verified=False)
    response = support_client.post(
        "/admin/people/driverprofile/", {"action": "verify", ACTION: [profile.pk]}
    )
    assert response.status_code == 302
    profile.refresh_from_db()
    assert profile.is_verified
    audit = AuditEvent.objects.get(action="driver.verified", subject_id=str(profile.pk))
    assert audit.actor == support
    # Doing it twice changes nothing and audits nothing.
    support_client.post("/admin/people/driverprofile/", {"action": "verify", ACTION: [profile.pk]})
    assert AuditEvent.objects.filter(action="driver.verified").count() == 1


def test_withdrawing_verification_takes_an_online_driver_offline(support_client, make_driver):
    """Withdrawing a driver's verification takes them offline, audited."""
    driver = make_driver(-26.2, 28.04)
    profile = driver.driver_profile
    support_client.post(
        "/admin/people/driverprofile/", {"action": "unverify", ACTION: [profile.pk]}
    )
    profile.refresh_from_db()
    assert not profile.is_verified
    assert DriverState.objects.get(driver=driver).status == DriverStatus.OFFLINE
    assert AuditEvent.objects.filter(action="driver.unverified").exists()


def test_dispatchers_cannot_verify_drivers(console, make_user):
    """Dispatchers are not offered the verify action, and posting it changes nothing."""
    profile = DriverProfile.objects.create(user=make_user("driver"), is_verified=False)
    assert 'value="verify"' not in console.get("/admin/people/driverprofile/").content.decode()
    console.post("/admin/people/driverprofile/", {"action": "verify", ACTION: [profile.pk]})
    profile.refresh_from_db()
    assert not profile.is_verified
    assert not AuditEvent.objects.filter(action="driver.verified").exists()


def test_support_sees_whether_a_code_waits_but_never_the_code(support_client):
    """The devices page shows the state and wrong tries; no code, nothing to unlock."""
    from people.signin import otp_send

    otp_send(phone_number="27821234567")
    device = PhoneOTPDevice.objects.get()
    device.failed_attempts = 2
    device.save()
    listing = support_client.get("/admin/people/phoneotpdevice/")
    assert listing.status_code == 200
    assert b"Waiting, 2 wrong tries" in listing.content
    assert device.token.encode() not in listing.content
    assert b"reset_lock" not in listing.content


def test_support_revokes_an_app_session(support_client, passenger):
    """Support revokes an app session, and its access token stops working."""
    from people.sessions import session_issue
    from people.tokens import user_for_access_token

    pair = session_issue(user=passenger)
    listing = support_client.get("/admin/people/apisession/", {"q": passenger.phone_number})
    assert listing.status_code == 200 and b"Active" in listing.content
    support_client.post(
        "/admin/people/apisession/", {"action": "revoke", ACTION: [pair.session.pk]}
    )
    assert not ApiSession.objects.get(pk=pair.session.pk).is_active
    assert user_for_access_token(pair.access) is None


def test_support_revokes_caregiver_links_through_the_service(
    support_client, passenger, make_user, make_link
):
    """Support revokes a caregiver link through the audited service."""
    link = make_link(passenger, make_user("caregiver"))
    support_client.post("/admin/people/caregiverlink/", {"action": "revoke", ACTION: [link.pk]})
    link.refresh_from_db()
    assert link.status == "revoked"
    assert AuditEvent.objects.filter(action="link.revoked").exists()


def test_the_audit_trail_is_read_only(support_client, support):
    """The audit trail can be read in the admin but not changed."""
    event = AuditEvent.objects.create(
        actor=support, action="x.y", subject_type="user", subject_id="1"
    )
    assert support_client.get("/admin/people/auditevent/").status_code == 200
    page = support_client.get(reverse("admin:people_auditevent_change", args=[event.pk]))
    assert page.status_code == 200 and b'name="_save"' not in page.content


def test_only_the_admin_allows_eval_for_alpine(console):
    """Only the admin's CSP allows eval (Alpine needs it); the console keeps its nonce."""
    admin_policy = console.get("/admin/")["Content-Security-Policy"]
    assert "'unsafe-eval'" in admin_policy
    assert "'unsafe-eval'" in Client().get("/admin/login/")["Content-Security-Policy"]
    console_policy = console.get("/console/")["Content-Security-Policy"]
    assert "'unsafe-eval'" not in console_policy and "'nonce-" in console_policy
    assert "'unsafe-inline'" not in admin_policy.split("script-src")[1].split(";")[0]


def test_driver_positions_in_the_admin_are_for_dispatchers_only(
    console, support_client, make_driver
):
    """Support staff answer about rides, not where a driver stands (people.access)."""
    driver = make_driver(-26.2041, 28.0473)
    profile = f"/admin/people/driverprofile/{driver.driver_profile.pk}/change/"
    for path in ("/admin/people/driverprofile/", profile):
        assert "-26.2041" in console.get(path).content.decode(), path
        shown = support_client.get(path)
        assert shown.status_code == 200 and "-26.2041" not in shown.content.decode(), path


# --- staff authenticators -----------------------------------------------------------


def test_support_reset_a_colleagues_authenticator_who_then_enrols_again(
    support_client, support, dispatcher, staff_groups
):
    """Support resets a colleague's lost authenticator, audited; the colleague enrols again."""
    dana = signed_in(dispatcher)
    assert dana.get("/console/").status_code == 200
    response = support_client.post(
        "/admin/people/user/", {"action": "reset_authenticator", ACTION: [dispatcher.pk]}
    )
    assert response.status_code == 302
    assert not TOTPDevice.objects.filter(user=dispatcher).exists()
    row = AuditEvent.objects.get(action="staff_2fa.reset")
    assert row.actor == support and row.subject_id == str(dispatcher.pk)
    # The session verified with the old authenticator is sent to enrol a new one.
    assert dana.get("/console/")["Location"].startswith(reverse("console:two_factor"))


def test_support_cannot_reset_a_superusers_authenticator(support_client, make_staff, staff_groups):
    """Support cannot weaken a superuser's second factor."""
    boss = make_staff(superuser=True)
    signed_in(boss)  # enrolled
    response = support_client.post(
        "/admin/people/user/", {"action": "reset_authenticator", ACTION: [boss.pk]}, follow=True
    )
    assert "Not reset for" in response.content.decode()
    assert TOTPDevice.objects.filter(user=boss).exists()
    assert not AuditEvent.objects.filter(action="staff_2fa.reset").exists()


def test_superusers_reset_anyones_authenticator(make_staff, support, staff_groups):
    """A superuser can reset any staff member's authenticator."""
    boss, other = make_staff(superuser=True), make_staff(superuser=True)
    for user in (support, other):
        signed_in(user)
        signed_in(boss).post(
            "/admin/people/user/", {"action": "reset_authenticator", ACTION: [user.pk]}
        )
        assert not TOTPDevice.objects.filter(user=user).exists()


def test_dispatchers_are_not_offered_the_reset(console, support):
    """Dispatchers can neither see nor use the authenticator reset."""
    signed_in(support)
    page = console.get("/admin/people/user/").content.decode()
    assert "reset_authenticator" not in page
    console.post("/admin/people/user/", {"action": "reset_authenticator", ACTION: [support.pk]})
    assert TOTPDevice.objects.filter(user=support).exists()


def test_the_user_list_shows_who_has_set_up_an_authenticator(support_client, dispatcher):
    """Support can see which staff have not yet set up their authenticator."""
    page = support_client.get("/admin/people/user/", {"is_staff__exact": "1"}).content.decode()
    assert "At next sign-in" in page
    signed_in(dispatcher)
    page = support_client.get("/admin/people/user/", {"is_staff__exact": "1"}).content.decode()
    assert "Set up" in page


def test_authenticator_secrets_have_no_admin_page(make_staff, staff_groups):
    """No admin page shows an authenticator's secret key, even to a superuser."""
    boss = signed_in(make_staff(superuser=True))
    assert boss.get("/admin/otp_totp/totpdevice/").status_code == 404


# --- signing in at /admin/login/ -------------------------------------------------------


@pytest.mark.parametrize("spelling", ["0821001000", "+27 82 100 1000", "27821001000"])
def test_the_admin_sign_in_takes_any_spelling_of_the_phone_and_lands_on_the_admin(
    make_staff, staff_groups, spelling
):
    """Staff sign in to the admin with any spelling of their phone number, then pass the code."""
    make_staff("Support", phone="27821001000")
    client = Client()
    assert client.get("/admin/login/").status_code == 200
    response = client.post("/admin/login/", {"username": spelling, "password": "pw-for-tests-only"})
    assert response.status_code == 302 and response["Location"] == "/admin/"
    # ...and from there to the authenticator code, which leads back to the admin.
    response = client.get("/admin/", follow=True)
    assert response.redirect_chain[-1][0] == f"{reverse('console:two_factor')}?next=%2Fadmin%2F"


def test_the_admin_sign_in_keeps_its_next(make_staff, staff_groups):
    """Signing in to the admin returns staff to the page they asked for."""
    user = make_staff("Support")
    response = Client().post(
        "/admin/login/?next=/admin/people/user/",
        {"username": user.phone_number, "password": "pw-for-tests-only"},
    )
    assert response["Location"] == "/admin/people/user/"


def test_an_account_support_adds_takes_up_the_invitations_to_its_number(
    support_client, support, passenger
):
    """A caregiver invited before having an account gets the invitation when support adds one."""
    link = caregivers.caregiver_link_invite(
        passenger=passenger, caregiver_phone="0827770001", actor=support
    )
    assert link.caregiver_id is None
    response = support_client.post(
        reverse("admin:people_user_add"),
        {
            "phone_number": "+27 82 777 0001",
            "first_name": "Emily",
            "last_name": "Davis",
            "user_type": "caregiver",
            "usable_password": "false",
        },
    )
    assert response.status_code == 302, response.content.decode()[-2000:]
    link.refresh_from_db()
    emily = User.objects.get(phone_number="27827770001")
    assert link.caregiver == emily and link.status == "invited"
    # Now it can be accepted for her, or by her in the app.
    assert access.may_accept_for_caregiver(support, link)


def test_a_driver_switched_off_on_their_admin_page_goes_offline(support_client, make_driver):
    """Support unticks "active" on a driver waiting for rides: offline, off the board."""
    driver = make_driver(*JHB)
    data = {
        "phone_number": driver.phone_number,
        "first_name": driver.first_name,
        "last_name": driver.last_name,
        "user_type": "driver",
        "date_joined_0": "2026-01-01",
        "date_joined_1": "10:00:00",
    }
    for prefix in ("driver_profile", "api_sessions"):
        data[f"{prefix}-TOTAL_FORMS"] = data[f"{prefix}-INITIAL_FORMS"] = "0"
    response = support_client.post(f"/admin/people/user/{driver.pk}/change/", data)
    assert response.status_code == 302, response.content.decode()[-2000:]
    assert DriverState.objects.get(driver=driver).status == DriverStatus.OFFLINE
    assert not on_board(driver)
