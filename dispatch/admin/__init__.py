"""
The admin's view of dispatch, one module per concern: rides with their
timeline and the caller lookup (support answering a phone call), drivers
with their verification, states and offers, and booking ahead. Rides change
state only through dispatch's services (the console, or the actions here);
every field is read-only. The front page (dashboard) counts today's rides.
"""

from dispatch.admin import dashboard, drivers, notifications, planning, rides  # noqa: F401
