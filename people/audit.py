"""The audit trail of changes to people: one row per change, written with it."""

from __future__ import annotations

from typing import Any

from django.db import models

from people.models import AuditEvent, User


def audit_event_record(
    *,
    actor: User | None,
    action: str,
    subject: models.Model,
    payload: dict[str, Any] | None = None,
) -> AuditEvent:
    """Write one audit row. Never put codes, tokens or secrets in payload."""
    return AuditEvent.objects.create(
        actor=actor,
        action=action,
        subject_type=subject._meta.model_name,
        subject_id=str(subject.pk),
        payload=payload or {},
    )
