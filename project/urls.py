from django.contrib import admin
from django.urls import path

from project.api import api, register_routers
from project.health import health_view

register_routers()

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/", api.urls),
    path("healthz", health_view),
]
