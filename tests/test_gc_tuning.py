"""Each worker's garbage collector: start-up objects frozen, young collections rarer."""

from __future__ import annotations

import gc

import pytest
from django.core.exceptions import ImproperlyConfigured

from project.serve import tune_garbage_collector


@pytest.fixture
def gc_state():
    before = gc.get_threshold()
    gc.unfreeze()
    yield
    gc.unfreeze()
    gc.set_threshold(*before)


def test_thresholds_are_set_and_what_exists_is_frozen(gc_state):
    tune_garbage_collector("50000,20,10")
    assert gc.get_threshold() == (50000, 20, 10)
    assert gc.get_freeze_count() > 1000  # Django, the apps, the ORM


def test_empty_keeps_pythons_own(gc_state):
    gc.set_threshold(2000, 10, 10)
    tune_garbage_collector("")
    assert gc.get_threshold() == (2000, 10, 10) and gc.get_freeze_count() == 0


@pytest.mark.parametrize("bad", ["50000", "a,b,c", "50000,20,-1", "1,2,3,4"])
def test_a_bad_value_stops_the_worker_with_a_clear_error(gc_state, bad):
    with pytest.raises(ImproperlyConfigured, match="GC_THRESHOLDS is three whole numbers"):
        tune_garbage_collector(bad)
    assert gc.get_freeze_count() == 0
