"""
Admin pieces shared by people/ and dispatch/: the admin site, and the
mixins of records support staff read (changes go through services: the
console, the apps, admin actions).
"""

from __future__ import annotations

from django.conf import settings
from django.utils.csp import CSP
from django.views.decorators.csp import csp_override
from unfold.sites import UnfoldAdminSite


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


# --- the admin site -------------------------------------------------------------
#
# Unfold builds its admin on Alpine.js, whose standard build evaluates the
# x-data / x-on attribute expressions with `new Function`. Under the site's
# policy (script-src 'self' + nonce, no 'unsafe-eval') every one of them
# fails and the admin renders behind an overlay nobody can close (checked in
# Chromium: the login button cannot be clicked). Alpine's CSP build does not
# understand unfold's expressions, so the admin's pages, and only they, add
# 'unsafe-eval' to script-src. Inline scripts stay forbidden; the console and
# every other page keep the strict policy.


def admin_csp() -> dict:
    """The site's policy, with 'unsafe-eval' in script-src."""
    policy = {key: list(value) for key, value in settings.SECURE_CSP.items()}
    policy["script-src"] = [*policy.get("script-src", [CSP.SELF]), CSP.UNSAFE_EVAL]
    return policy


class CareAdminSite(UnfoldAdminSite):
    """Unfold's admin site, its pages under the admin's script policy."""

    def admin_view(self, view, cacheable=False):
        return csp_override(admin_csp())(super().admin_view(view, cacheable))

    def login(self, request, extra_context=None):
        # Not wrapped by admin_view: it must work signed out.
        return csp_override(admin_csp())(super().login)(request, extra_context)
