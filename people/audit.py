"""The audit trail of changes to people: one row per change, written with it."""

from __future__ import annotations

from typing import Any

from django.db import models

from people.models import AuditEvent, User


def audit_event_record(
    *,
    actor: User | None,
    action: str,
    subject: models.Model | tuple[str, str],
    payload: dict[str, Any] | None = None,
) -> AuditEvent:
    """
    Write one audit row. `subject` is a row, or (type, id) for what is not
    one (a client address). Never put codes, tokens or secrets in payload.
    """
    if isinstance(subject, models.Model):
        subject_type, subject_id = subject._meta.model_name, str(subject.pk)
    else:
        subject_type, subject_id = subject
    return AuditEvent.objects.create(
        actor=actor,
        action=action,
        subject_type=subject_type,
        subject_id=subject_id,
        payload=payload or {},
    )
