"""Static files: hashed names in production, plain ones where DEBUG is on."""

from __future__ import annotations

MANIFEST = "whitenoise.storage.CompressedManifestStaticFilesStorage"


def test_production_collects_static_files_under_hashed_names(production_settings):
    """With DEBUG off, collectstatic writes hashed names that may be cached for good."""
    storages = production_settings("STORAGES")["STORAGES"]
    assert storages["staticfiles"]["BACKEND"] == MANIFEST


def test_debug_serves_static_files_without_collecting_them(production_settings):
    """make run and the tests need no collectstatic: plain names with DEBUG on."""
    storages = production_settings("STORAGES", DEBUG="1")["STORAGES"]
    assert storages["staticfiles"]["BACKEND"] == (
        "django.contrib.staticfiles.storage.StaticFilesStorage"
    )
