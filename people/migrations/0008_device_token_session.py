"""
Each push token names the app session that registered it, and goes when
that session ends (people.sessions). Numbered after the last migration the
squashes replaced (0007), so no name repeats one a deployed database holds.

Tokens registered before keep no session (null). Those of people with no
session still signed in belong to phones signed out or revoked already:
they are deleted here, since nobody left signed in registered them.
"""

import django.db.models.deletion
from django.db import migrations, models
from django.db.models import Q
from django.utils import timezone


def forget_tokens_of_the_signed_out(apps, schema_editor):
    ApiSession = apps.get_model("people", "ApiSession")
    DeviceToken = apps.get_model("people", "DeviceToken")
    signed_in = ApiSession.objects.filter(
        revoked_at__isnull=True, expires_at__gt=timezone.now()
    ).values("user_id")
    DeviceToken.objects.filter(Q(session__isnull=True) & ~Q(user_id__in=signed_in)).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("people", "0002_squashed_0003_staff_groups"),
    ]

    operations = [
        migrations.AddField(
            model_name="devicetoken",
            name="session",
            field=models.ForeignKey(
                blank=True,
                null=True,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="device_tokens",
                to="people.apisession",
            ),
        ),
        migrations.RunPython(forget_tokens_of_the_signed_out, migrations.RunPython.noop),
    ]
