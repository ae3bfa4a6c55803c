"""The console's Caregiver links page: finding links, permissions, accepting by phone."""

from __future__ import annotations

import pytest
from django.test import Client

from people import caregivers
from people.models import AuditEvent, CaregiverLink, LinkStatus
from tests.conftest import staff_login

pytestmark = pytest.mark.django_db


@pytest.fixture
def family(make_user, make_link):
    """Two passengers with their caregivers: one active, one revoked, one invited."""
    rose = make_user("passenger", phone="27821110001", first_name="Rose", last_name="Mokoena")
    abel = make_user("passenger", phone="27821110002", first_name="Abel", last_name="Khumalo")
    thandi = make_user("caregiver", phone="27821110003", first_name="Thandi", last_name="Nkosi")
    sipho = make_user("caregiver", phone="27821110004", first_name="Sipho", last_name="Dube")
    active = make_link(rose, thandi)
    revoked = CaregiverLink.objects.create(passenger=abel, caregiver=sipho, status="revoked")
    invited = CaregiverLink.objects.create(passenger=abel, caregiver=thandi, status="invited")
    return {"active": active, "revoked": revoked, "invited": invited}


def rows(html: str) -> int:
    return html.count('data-testid="link-row"')


def test_links_are_found_by_passenger_name_or_any_phone_spelling(console, family):
    """The passenger box takes a name, a whole number in any spelling, or part of one."""
    for query in ("Rose", "mokoena", "082 111 0001", "+27 82 111 0001", "1110001"):
        html = console.get("/console/links/", {"passenger": query}).content.decode()
        assert rows(html) == 1 and "Rose Mokoena" in html, query
    html = console.get("/console/links/", {"passenger": "Nobody"}).content.decode()
    assert rows(html) == 0 and "No link matches" in html


def test_links_are_found_by_caregiver(console, family):
    """The caregiver box narrows to one caregiver's links (live ones by default)."""
    html = console.get("/console/links/", {"caregiver": "Thandi"}).content.decode()
    assert rows(html) == 2 and "Sipho" not in html


def test_revoked_links_are_hidden_until_asked_and_never_show_permissions(console, family):
    """By default only live links; the toggle shows ended ones, without permission chips."""
    html = console.get("/console/links/").content.decode()
    assert rows(html) == 2 and "Sipho Dube" not in html
    html = console.get("/console/links/", {"ended": "on", "caregiver": "Sipho"}).content.decode()
    assert rows(html) == 1 and "Revoked" in html
    row = html[html.index('data-testid="link-row"') :]
    assert "perm-yes" not in row and "Books rides" not in row
    assert "Change permissions" not in row and "Revoke</button>" not in row


def test_the_search_answers_htmx_with_the_list_alone(htmx, family):
    """An htmx search swaps the list only, not the page."""
    response = htmx.get("/console/links/?passenger=Rose", HTTP_HX_TARGET="link-list")
    html = response.content.decode()
    assert html.lstrip().startswith('<section id="link-list"') and "<html" not in html


def test_an_invitation_leaves_the_list_as_the_search_box_says(htmx, family, make_user):
    """
    Inviting while a search is shown re-lists what the search finds (the
    form sends the search box along), not every link under a box that
    still reads the search.
    """
    page = htmx.get("/console/links/?passenger=Rose").content.decode()
    form = page[page.index('id="link-form"') :]
    assert 'hx-include=".link-search"' in form[: form.index("</form>")]
    make_user("caregiver", phone="27821110005", first_name="Lindi", last_name="Zulu")
    response = htmx.post(
        "/console/links/new/",
        {
            "passenger_phone": "27821110001",
            "caregiver_phone": "27821110005",
            "relationship_type": "family",
            "can_book_rides": "on",
            "passenger": "Rose",
            "caregiver": "",
        },
    )
    html = response.content.decode()
    assert "is invited to care for Rose Mokoena" in html
    listed = html[html.index('<section id="link-list"') :]
    assert "Links found" in listed and rows(listed) == 2
    assert "Lindi Zulu" in listed and "Abel Khumalo" not in listed


def test_a_dispatcher_changes_a_links_permissions_audited(htmx, family, dispatcher):
    """Saving the switches changes the link through the service and writes an audit row."""
    link = family["active"]
    response = htmx.post(
        f"/console/links/{link.pk}/permissions/",
        {"can_book_rides": "on", "can_receive_notifications": "on"},
    )
    link.refresh_from_db()
    assert (link.can_book_rides, link.can_view_location, link.can_receive_notifications) == (
        True,
        False,
        True,
    )
    html = response.content.decode()
    assert html.lstrip().startswith('<li class="link-item') and "Saved what" in html
    audit = AuditEvent.objects.get(action="link.updated", subject_id=str(link.pk))
    assert audit.actor == dispatcher and audit.payload["after"]["can_view_location"] is False


def test_permissions_changed_since_the_page_was_read_are_not_written_over(htmx, family):
    """
    The passenger switched the location off after the page showed it on: a
    save from that page is refused in words, and the passenger's choice stays.
    """
    link = family["active"]
    page = htmx.get("/console/links/").content.decode()
    caregivers.caregiver_link_update(link=link, actor=link.passenger, can_view_location=False)
    # The support agent only meant to stop the bookings, leaving the rest as shown.
    shown = {f"shown_{name}": "true" for name in caregivers.PERMISSIONS}
    response = htmx.post(
        f"/console/links/{link.pk}/permissions/",
        {"can_view_location": "on", "can_receive_notifications": "on", **shown},
    )
    link.refresh_from_db()
    assert (link.can_book_rides, link.can_view_location) == (True, False)
    html = response.content.decode()
    assert "changed while you were looking" in html and "Saved what" not in html
    # The row shows the switches as they stand now: the location off.
    assert f'name="can_view_location" id="perm-where-{link.pk}">' in html
    assert AuditEvent.objects.filter(action="link.updated").count() == 1
    # Saved again from the row as it stands now, the change is made.
    shown["shown_can_view_location"] = "false"
    assert 'name="shown_can_view_location" value="false"' in html
    response = htmx.post(f"/console/links/{link.pk}/permissions/", {**shown})
    assert "Saved what" in response.content.decode()
    link.refresh_from_db()
    assert not (link.can_book_rides or link.can_view_location or link.can_receive_notifications)
    # What the page showed is what its form sends back.
    shown["shown_can_view_location"] = "true"
    row = page[page.index(f'id="link-{link.pk}"') :]
    for name, value in shown.items():
        assert f'<input type="hidden" name="{name}" value="{value}">' in row


def test_a_revoked_links_permissions_cannot_be_changed(htmx, family):
    """A revoked link stays as it ended: the change is refused and nothing is written."""
    link = family["revoked"]
    response = htmx.post(f"/console/links/{link.pk}/permissions/", {})
    link.refresh_from_db()
    assert link.can_book_rides and "cannot be changed" in response.content.decode()
    assert not AuditEvent.objects.filter(action="link.updated").exists()


def test_staff_without_a_staff_role_cannot_change_links(make_staff, family):
    """Someone who is staff but in neither group is refused (people.access)."""
    client = staff_login(Client(), make_staff())
    link = family["active"]
    response = client.post(f"/console/links/{link.pk}/permissions/", {})
    assert response.status_code == 403
    link.refresh_from_db()
    assert link.can_view_location


def test_accepting_for_a_caregiver_needs_how_they_consented(htmx, family, dispatcher):
    """Without a reason the invitation stays open; with one it is active, and the reason audited."""
    link = family["invited"]
    refused = htmx.post(f"/console/links/{link.pk}/accept/", {"consent": "  "})
    link.refresh_from_db()
    assert link.status == LinkStatus.INVITED and "how the caregiver agreed" in (
        refused.content.decode()
    )
    htmx.post(f"/console/links/{link.pk}/accept/", {"consent": "Phoned Thandi at 14:05, agreed"})
    link.refresh_from_db()
    assert link.status == LinkStatus.ACTIVE
    audit = AuditEvent.objects.get(action="link.accepted", subject_id=str(link.pk))
    assert audit.actor == dispatcher
    assert audit.payload == {
        "on_behalf_of": link.caregiver_id,
        "consent": "Phoned Thandi at 14:05, agreed",
    }


@pytest.mark.parametrize("since", ["made a driver", "switched off"])
def test_an_invitation_to_an_account_that_can_no_longer_care_cannot_be_accepted(
    htmx, family, dispatcher, since
):
    """Staff accepting in the caregiver's place are refused, as a new invitation would be."""
    link = family["invited"]
    thandi = link.caregiver
    if since == "made a driver":
        thandi.user_type = "driver"
    else:
        thandi.is_active = False
    thandi.save()
    response = htmx.post(f"/console/links/{link.pk}/accept/", {"consent": "Phoned Thandi"})
    link.refresh_from_db()
    assert link.status == LinkStatus.INVITED
    assert "cannot care for anyone now" in response.content.decode()


def test_an_invitation_to_a_number_without_an_account_cannot_be_accepted_here(
    htmx, make_user, dispatcher
):
    """Nobody to name yet: the page offers no acceptance and the service refuses one."""
    rose = make_user("passenger", first_name="Rose")
    link = CaregiverLink.objects.create(
        passenger=rose, invited_phone="27829990000", invited_by=dispatcher
    )
    html = htmx.get("/console/links/", HTTP_HX_TARGET="link-list").content.decode()
    assert "Accept for the caregiver" not in html
    response = htmx.post(f"/console/links/{link.pk}/accept/", {"consent": "phoned"})
    link.refresh_from_db()
    assert link.status == LinkStatus.INVITED and "no Care Connect account" in (
        response.content.decode()
    )
