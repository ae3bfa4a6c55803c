"""
A NUL character in an admin list's address: PostgreSQL refuses it in any
text, so a search or a filter holding one must never reach a query.
"""

from __future__ import annotations

import re

import pytest
from django.contrib import admin
from django.db import models
from django.test import Client
from django.urls import reverse

from tests.conftest import staff_login

pytestmark = [pytest.mark.postgres, pytest.mark.django_db]

# Django's words for its search box ("Null characters are not allowed.") or ours.
SAYS_NUL = re.compile(r"NUL character|Null characters", re.IGNORECASE)


def _changelists():
    for model, model_admin in admin.site._registry.items():
        url = reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist")
        yield model, model_admin, url


def _text_field(model, model_admin, request) -> str | None:
    """A text field of `model` that the list lets its address filter on."""
    for field in model._meta.concrete_fields:
        if isinstance(field, models.CharField | models.TextField) and model_admin.lookup_allowed(
            field.name, "x", request
        ):
            return field.name
    return None


@pytest.fixture
def boss(make_user):
    user = make_user("", first_name="Sue", last_name="Super", is_staff=True, is_superuser=True)
    return staff_login(Client(), user)


def _answered(client, url, params) -> str:
    """The page as the browser ends on it, after the admin's redirects."""
    response = client.get(url, params, follow=True)
    assert response.status_code == 200, (url, params, response.status_code)
    return response.content.decode()


def test_a_nul_in_any_admin_search_is_refused_in_words(boss):
    """Every list with a search box answers ?q= holding a NUL with a message, not a 500."""
    searched = []
    for _model, model_admin, url in _changelists():
        if not model_admin.search_fields:
            continue
        html = _answered(boss, url, {"q": "Sar\x00ah"})
        assert SAYS_NUL.search(html), url
        searched.append(url)
    assert "/admin/people/user/" in searched and "/admin/dispatch/ride/" in searched


def test_a_nul_in_any_admin_filter_is_refused_in_words(boss, make_user):
    """A filter in a list's address holding a NUL gets a message, not a 500."""
    request = boss.get("/admin/").wsgi_request
    filtered = []
    for model, model_admin, url in _changelists():
        name = _text_field(model, model_admin, request)
        if name is None:
            continue
        html = _answered(boss, url, {name: "\x00", "o": "1"})
        assert SAYS_NUL.search(html), url
        filtered.append(url)
    assert "/admin/people/user/" in filtered
    # A list filter's own parameter, and a NUL in a parameter's name.
    assert SAYS_NUL.search(_answered(boss, "/admin/people/user/", {"user_type": "driver\x00"}))
    assert SAYS_NUL.search(_answered(boss, "/admin/dispatch/ride/", {"status__exact\x00": "x"}))


def test_a_nul_in_an_autocomplete_search_finds_nobody(boss, make_user):
    """The driver page's account picker, searched with a NUL, answers no one, not a 500."""
    make_user("driver", first_name="Sarah")
    query = {"app_label": "people", "model_name": "driverprofile", "field_name": "user"}
    response = boss.get("/admin/autocomplete/", {**query, "term": "Sar\x00ah"})
    assert response.status_code == 200
    assert response.json()["results"] == []
    assert boss.get("/admin/autocomplete/", {**query, "term": "Sarah"}).json()["results"]
