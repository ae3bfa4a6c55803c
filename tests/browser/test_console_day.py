"""
The day view in Chromium against the real server and the demo's scheduled
day: a dispatcher plans tomorrow, sees a lane per run and publishes; a
driver's app, connected meanwhile, receives its manifest.
"""

from __future__ import annotations

import json
import re

import pytest

from tests.browser.helpers import (
    MICHAEL,
    app_socket,
    issue_token,
    receive_until,
    sign_in,
)

pytestmark = [pytest.mark.browser, pytest.mark.server]


def test_a_dispatcher_plans_tomorrow_and_publishes(server, new_page):
    """A dispatcher plans and publishes tomorrow in a browser; the driver's app gets the run."""
    page = new_page()
    sign_in(server, page)
    # The board's map tiles point at a dead port; this page loads none.
    page.errors.clear()
    page.get_by_role("link", name="Day plan & reports").click()
    page.wait_for_url(re.compile(r".*/console/day/\d{4}-\d{2}-\d{2}/$"))
    service_date = page.url.rstrip("/").rsplit("/", 1)[-1]
    assert "The day is not planned yet." in page.content()
    _, token = issue_token(server, MICHAEL)
    with app_socket(server, "/ws/driver/", token) as driver:
        # Planning and publishing are keyboard-reachable buttons.
        plan = page.get_by_role("button", name="Plan tomorrow")
        plan.focus()
        page.keyboard.press("Enter")
        page.locator(".day-status", has_text="Planned").wait_for()
        lanes = page.locator("article.lane")
        assert lanes.count() >= 2
        assert page.locator(".lane-svg rect.stop").count() >= 4
        assert page.get_by_text("Draft: riders and drivers not told").is_visible()
        page.get_by_role("button", name="Publish", exact=True).click()
        page.locator(".day-status", has_text="Published").wait_for()
        assert page.locator(".pill-ok", has_text="Published").is_visible()
        michael_lane = page.locator("article.lane").filter(
            has=page.get_by_role("heading", name="Michael Brown", exact=True)
        )
        stops = michael_lane.locator("ol.stops > li").count()
        if stops:
            # His app hears the published run: the stops the lane shows.
            manifest = receive_until(driver, "manifest_updated")
            assert manifest["service_date"] == service_date
            assert len(manifest["stops"]) == stops
        else:
            driver.send(json.dumps({"type": "get_manifest", "service_date": service_date}))
            assert receive_until(driver, "manifest")["stops"] == []
    audit = page.locator("ol.audit")
    assert "published" in audit.inner_text() and "planned" in audit.inner_text()
    # No CSP violation, no script error.
    assert page.errors == []
