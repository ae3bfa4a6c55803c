"""
What people/ tells the rest of the system, without knowing who listens
(dispatch registers its receivers in DispatchConfig.ready). Each is sent
inside the transaction of the change; receivers that notify anyone defer
that to the commit.
"""

from __future__ import annotations

from django.contrib.auth.models import Group
from django.contrib.auth.signals import user_logged_out
from django.db.models.signals import m2m_changed, post_save, pre_delete, pre_save
from django.dispatch import Signal

from people.access import may_care
from people.models import User, UserType

# Caregiver links of these users changed (invited, answered, edited,
# revoked): `user_ids`, the passenger's and the caregiver's.
links_changed = Signal()

# A passenger's travel needs changed: `passenger_id`.
needs_changed = Signal()

# A user's access ended: `user_id`, and `api_session_id` when one app session
# ended (logout, revoked, a stolen refresh token) or `console_session_key`
# when one console session did; neither when the account was switched off or
# its authenticator was reset (people.staff_signin.totp_reset).
access_ended = Signal()

# An account was switched off: `user_id`. people.sessions ends its sessions
# (connected in PeopleConfig.ready).
switched_off = Signal()

# Whether an account may care for someone (people.access.may_care) changed:
# switched off or on, made a driver's or no longer one: `user_id`. Its links
# grant, or stop granting, at once (people.caregivers, connected in
# PeopleConfig.ready).
caring_changed = Signal()

# A driver may drive no more: their account was switched off, or its role
# is no longer driver: `user_id`. Dispatch takes them off duty.
driving_ended = Signal()

# A user's staff roles changed (the staff flag, their groups): `user_id`.
# Sockets opened on a role ask again.
roles_changed = Signal()

# An account was made staff (the staff flag set): `user_id`. Its app
# sessions, opened by SMS code alone, end (people.sessions, connected in
# PeopleConfig.ready): staff sign in to the apps with their authenticator.
made_staff = Signal()


def _remember_active(sender, instance, **kwargs) -> None:
    before = (
        sender.objects.filter(pk=instance.pk)
        .values_list("is_active", "is_staff", "is_superuser", "user_type")
        .first()
        if instance.pk
        else None
    )
    (
        instance._was_active,
        instance._was_staff,
        instance._was_superuser,
        instance._was_user_type,
    ) = before or (None,) * 4


def _drives(is_active: bool | None, user_type: str | None) -> bool:
    return bool(is_active) and user_type == UserType.DRIVER


def _switched_off(sender, instance, created, **kwargs) -> None:
    """
    An account switched off ends every access it had, at once and for good:
    its app sessions are revoked, so switching it on again revives none of
    their tokens (a stolen phone's included). An account that may care for
    someone no more (switched off, made a driver's), or may again, has its
    links re-read (caring_changed). A driver's account switched off, or no
    longer a driver's, ends their driving too (driving_ended). An account
    made staff signs in to the apps again, with its authenticator
    (made_staff).
    """
    if getattr(instance, "_was_active", None) and not instance.is_active:
        switched_off.send(sender=sender, user_id=instance.pk)
        access_ended.send(sender=sender, user_id=instance.pk)
    elif (getattr(instance, "_was_staff", None) and not instance.is_staff) or (
        getattr(instance, "_was_superuser", None) and not instance.is_superuser
    ):
        roles_changed.send(sender=sender, user_id=instance.pk)
    if getattr(instance, "_was_staff", None) is False and instance.is_staff:
        made_staff.send(sender=sender, user_id=instance.pk)
    was_active = getattr(instance, "_was_active", None)
    was_user_type = getattr(instance, "_was_user_type", None)
    if was_active is not None and may_care(
        User(is_active=was_active, user_type=was_user_type)
    ) != may_care(instance):
        caring_changed.send(sender=sender, user_id=instance.pk)
    if _drives(was_active, was_user_type) and not _drives(instance.is_active, instance.user_type):
        driving_ended.send(sender=sender, user_id=instance.pk)


def _groups_changed(sender, instance, action, reverse, pk_set, **kwargs) -> None:
    """
    Someone joined or left a group, from either side of the relation; a
    group emptied (`group.user_set.clear()`) names its members before.
    """
    if action == "pre_clear" and reverse:
        instance._members = list(instance.user_set.values_list("pk", flat=True))
        return
    if action not in ("post_add", "post_remove", "post_clear"):
        return
    if not reverse:
        members = [instance.pk]
    elif action == "post_clear":
        members = getattr(instance, "_members", [])
    else:
        members = list(pk_set or ())
    for user_id in members:
        roles_changed.send(sender=User, user_id=user_id)


def _group_deleted(sender, instance, **kwargs) -> None:
    """A group deleted takes its members' roles with it."""
    for user_id in instance.user_set.values_list("pk", flat=True):
        roles_changed.send(sender=User, user_id=user_id)


def _console_logout(sender, request, user, **kwargs) -> None:
    if user is not None and request.session.session_key:
        access_ended.send(
            sender=sender, user_id=user.pk, console_session_key=request.session.session_key
        )


def connect() -> None:
    """Connected once, in PeopleConfig.ready."""
    pre_save.connect(_remember_active, sender=User, dispatch_uid="people.remember_active")
    post_save.connect(_switched_off, sender=User, dispatch_uid="people.switched_off")
    user_logged_out.connect(_console_logout, dispatch_uid="people.console_logout")
    m2m_changed.connect(
        _groups_changed, sender=User.groups.through, dispatch_uid="people.groups_changed"
    )
    pre_delete.connect(_group_deleted, sender=Group, dispatch_uid="people.group_deleted")
