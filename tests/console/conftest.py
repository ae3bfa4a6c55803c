"""Fixtures for the console: staff of each kind, signed-in clients, sockets."""

from __future__ import annotations

import importlib

import pytest
from django.test import Client

from tests.conftest import staff_login

# What the groups' migration grants.
STAFF_GROUPS = importlib.import_module("people.migrations.0002_squashed_0003_staff_groups").GROUPS


@pytest.fixture(autouse=True)
def _fast_passwords(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def staff_groups(db):
    """
    The Dispatchers and Support groups with exactly the permissions their
    migrations grant (a transactional test may have flushed them).
    """
    from django.contrib.auth.models import Group, Permission

    groups = {}
    for name, perms in STAFF_GROUPS.items():
        group, _ = Group.objects.get_or_create(name=name)
        group.permissions.set(
            [
                Permission.objects.get(content_type__app_label=app, codename=codename)
                for app, codename in perms
            ]
        )
        groups[name] = group
    return groups


@pytest.fixture
def make_staff(make_user, staff_groups):
    def make(*groups: str, superuser: bool = False, staff: bool = True, **extra):
        user = make_user(
            "",
            first_name=extra.pop("first_name", "Sam"),
            last_name=extra.pop("last_name", "Staff"),
            is_staff=staff,
            is_superuser=superuser,
            **extra,
        )
        user.set_password("pw-for-tests-only")
        user.save()
        for name in groups:
            user.groups.add(staff_groups[name])
        return user

    return make


@pytest.fixture
def support(make_staff):
    return make_staff("Support", first_name="Suki", last_name="Support")


@pytest.fixture
def console(dispatcher, staff_groups):
    """A browser session signed in as a dispatcher, password and code."""
    return staff_login(Client(), dispatcher)


@pytest.fixture
def htmx(console):
    """The dispatcher's client, sending what htmx sends."""

    class Htmx:
        def get(self, path, **kw):
            return console.get(path, headers={"HX-Request": "true"}, **kw)

        def post(self, path, data=None, **kw):
            return console.post(path, data or {}, headers={"HX-Request": "true"}, **kw)

    return Htmx()


@pytest.fixture
def session_cookie():
    """
    A Cookie header signing the user in, for WebsocketCommunicator; staff
    with their authenticator code too unless `second_factor=False`.
    """

    def make(user, second_factor: bool = True) -> list[tuple[bytes, bytes]]:
        client = Client()
        if second_factor:
            staff_login(client, user)
        else:
            client.force_login(user)
        return [(b"cookie", f"sessionid={client.cookies['sessionid'].value}".encode())]

    return make
