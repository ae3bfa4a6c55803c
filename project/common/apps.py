from django.contrib.admin.apps import AdminConfig
from django.core.signals import request_finished

from project.common.db import close_request_connections


class CareAdminConfig(AdminConfig):
    """
    django.contrib.admin, with project.common.admin.CareAdminSite as
    `admin.site`; and project.common's one signal receiver.
    """

    default_site = "project.common.admin.CareAdminSite"

    def ready(self) -> None:
        super().ready()
        request_finished.connect(close_request_connections, dispatch_uid="close_request_db")
