"""
The support admin for people, one module per concern: users and their
profiles, caregiver links, sign-in (SMS-code devices, API sessions), and the
audit trail. Drivers and their verification are dispatch's admin.

Admin actions call services; nothing here saves a model in a loop.
"""

from people.admin import audit, links, signin, users  # noqa: F401
