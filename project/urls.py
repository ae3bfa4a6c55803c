from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView

from project.api import api, not_found
from project.health import health_view

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/", api.urls),
    path("api/<path:rest>", not_found),
    path("console/", include("console.urls")),
    path("", RedirectView.as_view(pattern_name="console:board"), name="home"),
    path("healthz", health_view),
]
