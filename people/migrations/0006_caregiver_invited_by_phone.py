"""
An invitation names a phone number; its caregiver may not exist yet. The
number invited is filled in from each existing link's caregiver.
"""

from django.conf import settings
from django.db import migrations, models
from django.db.models import Q


def fill_invited_phone(apps, schema_editor):
    CaregiverLink = apps.get_model("people", "CaregiverLink")
    for link in CaregiverLink.objects.select_related("caregiver"):
        link.invited_phone = link.caregiver.phone_number
        link.save(update_fields=["invited_phone"])


class Migration(migrations.Migration):
    dependencies = [("people", "0005_session_previous_refresh_hash")]

    operations = [
        migrations.AddField(
            model_name="caregiverlink",
            name="invited_phone",
            field=models.CharField(default="", max_length=16),
            preserve_default=False,
        ),
        migrations.RunPython(fill_invited_phone, migrations.RunPython.noop),
        migrations.AlterField(
            model_name="caregiverlink",
            name="caregiver",
            field=models.ForeignKey(
                blank=True,
                null=True,
                on_delete=models.deletion.CASCADE,
                related_name="cared_for_links",
                to=settings.AUTH_USER_MODEL,
            ),
        ),
        migrations.RemoveConstraint(model_name="caregiverlink", name="one_live_link_per_pair"),
        migrations.AddConstraint(
            model_name="caregiverlink",
            constraint=models.UniqueConstraint(
                condition=Q(status__in=["invited", "active"]),
                fields=("passenger", "invited_phone"),
                name="one_live_link_per_pair",
            ),
        ),
    ]
