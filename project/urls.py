from django.contrib import admin
from django.urls import path

from project.api import api, register_routers

register_routers()

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/", api.urls),
]
