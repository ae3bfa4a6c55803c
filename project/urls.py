from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView

from dispatch import share_page
from project.api import api_urls, not_found

# /healthz is answered ahead of host validation: project.health.health_middleware.
urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/", api_urls()),
    path("api/<path:rest>", not_found),
    path("console/", include("console.urls")),
    # The family tracking page (dispatch.sharing): public, by token.
    path("t/<str:token>/", share_page.track, name="track"),
    path("t/<str:token>/status/", share_page.track_status, name="track_status"),
    path("", RedirectView.as_view(pattern_name="console:board"), name="home"),
]
