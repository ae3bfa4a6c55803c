from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView

from project.api import api, not_found

# /healthz is answered ahead of host validation: project.health.health_middleware.
urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/", api.urls),
    path("api/<path:rest>", not_found),
    path("console/", include("console.urls")),
    path("", RedirectView.as_view(pattern_name="console:board"), name="home"),
]
