from django.contrib.admin.apps import AdminConfig


class CareAdminConfig(AdminConfig):
    """django.contrib.admin, with project.common.admin.CareAdminSite as `admin.site`."""

    default_site = "project.common.admin.CareAdminSite"
