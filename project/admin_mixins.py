"""
Admin permissions shared by people/ and dispatch/: support staff read these
records; changes go through services (console, app, admin actions).
"""

from __future__ import annotations


class NoAddOrDelete:
    """Rows are created and ended by services, never typed in or deleted."""

    def has_add_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class ReadOnly(NoAddOrDelete):
    """A record to read: its history is not edited by hand."""

    def has_change_permission(self, request, obj=None):
        return False
