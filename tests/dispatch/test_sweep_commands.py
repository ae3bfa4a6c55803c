"""The commands that sweep once, or again and again with --loop."""

from __future__ import annotations

import pytest
from django.core.management import call_command

from dispatch.management.sweep import SweepCommand

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("command", ["sweep_offers", "sweep_trips"])
def test_a_sweep_with_nothing_to_do_says_nothing(command, capsys):
    call_command(command)
    assert capsys.readouterr().out == ""


def test_a_looping_sweep_waits_its_interval_between_sweeps(monkeypatch):
    said, slept = [], []

    class Twice(SweepCommand):
        interval = 7.0

        def sweep(self):
            said.append(len(said))
            if len(said) == 2:
                raise KeyboardInterrupt
            return f"sweep {len(said)}"

    monkeypatch.setattr("dispatch.management.sweep.time.sleep", slept.append)
    command = Twice()
    with pytest.raises(KeyboardInterrupt):
        call_command(command, loop=True)
    assert said == [0, 1] and slept == [7.0]
