"""people.signals.roles_changed: every way a staff role is taken away tells the user's sockets."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group

from people import signals


@pytest.fixture
def heard():
    got: list[int] = []

    def listener(sender, *, user_id, **kwargs):
        got.append(user_id)

    signals.roles_changed.connect(listener, dispatch_uid="roles-listener")
    yield got
    signals.roles_changed.disconnect(dispatch_uid="roles-listener")


@pytest.mark.django_db
def test_emptying_the_dispatchers_group_tells_its_members(dispatcher, heard):
    """group.user_set.clear(): post_clear has pk_set None, so nobody is told."""
    Group.objects.get(name="Dispatchers").user_set.clear()
    assert dispatcher.pk in heard


@pytest.mark.django_db
def test_a_superuser_flag_taken_away_tells_the_user(make_user, heard):
    """A superuser in no group is a dispatcher (is_dispatcher): losing the flag is a role change."""
    boss = make_user("", first_name="Bo", is_staff=True, is_superuser=True)
    boss.is_superuser = False
    boss.save()
    assert boss.pk in heard


@pytest.mark.django_db
def test_leaving_a_group_or_the_staff_flag_or_the_group_itself_tells_the_user(dispatcher, heard):
    """Either side of the membership, the staff flag, and a deleted group each say so."""
    group = Group.objects.get(name="Dispatchers")
    dispatcher.groups.remove(group)
    group.user_set.add(dispatcher)
    dispatcher.is_staff = False
    dispatcher.save()
    group.delete()
    assert heard == [dispatcher.pk] * 4
