"""
What people/ tells the rest of the system, without knowing who listens
(dispatch registers its receivers in DispatchConfig.ready). Each is sent
inside the transaction of the change; receivers that notify anyone defer
that to the commit.
"""

from __future__ import annotations

from django.dispatch import Signal

# Caregiver links of these users changed (invited, answered, edited,
# revoked): `user_ids`, the passenger's and the caregiver's.
links_changed = Signal()

# A passenger's travel needs changed: `passenger_id`.
needs_changed = Signal()
