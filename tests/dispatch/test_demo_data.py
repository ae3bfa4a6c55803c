"""Demo data stays out of production."""

from __future__ import annotations

import io

import pytest
from django.core.management import CommandError, call_command

from people.models import User


@pytest.mark.django_db
def test_seed_demo_refuses_when_debug_is_off(settings):
    """With DEBUG off (production) the demo dispatcher is not created."""
    settings.DEBUG = False
    with pytest.raises(CommandError, match="DEBUG is off"):
        call_command("seed_demo")
    assert not User.objects.exists()


@pytest.mark.django_db
def test_seed_demo_loads_with_debug_on_or_when_overridden(settings):
    """make run (DEBUG on) loads the demo people; so does an explicit override."""
    settings.DEBUG = True
    call_command("seed_demo", stdout=io.StringIO())
    assert User.objects.filter(is_staff=True).exists()
    settings.DEBUG = False
    call_command("seed_demo", "--even-without-debug", stdout=io.StringIO())
