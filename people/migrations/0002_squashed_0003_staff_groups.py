"""
The two staff groups. Dispatchers run the console; Support manages people.

It runs after both apps' tables exist, since each group is granted rights in
both (people.access names the groups).
"""

from django.db import migrations

GROUPS = {
    "Dispatchers": [
        ("dispatch", "view_ride"),
        ("dispatch", "change_ride"),
        ("dispatch", "view_rideevent"),
        ("dispatch", "view_driverstate"),
        ("people", "view_user"),
        ("people", "view_driverprofile"),
        ("people", "view_passengerprofile"),
        ("people", "view_caregiverlink"),
    ],
    "Support": [
        ("people", "view_user"),
        ("people", "change_user"),
        ("people", "add_user"),
        ("people", "view_driverprofile"),
        ("people", "change_driverprofile"),
        ("people", "add_driverprofile"),
        ("people", "view_passengerprofile"),
        ("people", "change_passengerprofile"),
        ("people", "view_caregiverlink"),
        ("people", "add_caregiverlink"),
        ("people", "change_caregiverlink"),
        ("people", "view_phoneotpdevice"),
        ("people", "change_phoneotpdevice"),
        ("people", "view_apisession"),
        ("people", "change_apisession"),
        ("people", "view_auditevent"),
        ("dispatch", "view_ride"),
        ("dispatch", "view_rideevent"),
        ("dispatch", "view_driverstate"),
    ],
}


def create_groups(apps, schema_editor):
    from django.contrib.auth.management import create_permissions

    # Permissions are normally created after all migrations; make them now.
    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = None

    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    for name, perms in GROUPS.items():
        group, _ = Group.objects.get_or_create(name=name)
        for app_label, codename in perms:
            perm = Permission.objects.get(content_type__app_label=app_label, codename=codename)
            group.permissions.add(perm)


def remove_groups(apps, schema_editor):
    apps.get_model("auth", "Group").objects.filter(name__in=GROUPS).delete()


class Migration(migrations.Migration):
    replaces = [
        ("people", "0002_staff_groups"),
        ("people", "0003_staff_group_reads"),
    ]

    dependencies = [
        ("people", "0001_squashed_0007_notifications"),
        ("dispatch", "0001_squashed_0007_notice_log_mark"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [migrations.RunPython(create_groups, remove_groups)]
