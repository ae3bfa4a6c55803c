"""Dispatchers read passenger needs; Support reads driver states."""

from django.db import migrations

EXTRA = {
    "Dispatchers": [("people", "view_passengerprofile")],
    "Support": [("dispatch", "view_driverstate")],
}


def grant(apps, schema_editor):
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    for name, perms in EXTRA.items():
        group, _ = Group.objects.get_or_create(name=name)
        for app_label, codename in perms:
            group.permissions.add(
                Permission.objects.get(content_type__app_label=app_label, codename=codename)
            )


def revoke(apps, schema_editor):
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    for name, perms in EXTRA.items():
        group = Group.objects.filter(name=name).first()
        for app_label, codename in perms:
            if group:
                group.permissions.remove(
                    Permission.objects.get(content_type__app_label=app_label, codename=codename)
                )


class Migration(migrations.Migration):
    dependencies = [("people", "0002_staff_groups")]

    operations = [migrations.RunPython(grant, revoke)]
