from django.urls import path

from console import views

app_name = "console"

urlpatterns = [
    path("", views.board, name="board"),
    path("login/", views.login, name="login"),
    path("logout/", views.logout, name="logout"),
    path("two-factor/", views.two_factor, name="two_factor"),
    path("regions/<slug:name>/", views.region, name="region"),
    path("rides/<int:ride_pk>/", views.ride_panel, name="ride"),
    path("rides/<int:ride_pk>/assign/", views.ride_assign, name="ride_assign"),
    path("rides/<int:ride_pk>/cancel/", views.ride_cancel, name="ride_cancel"),
    path("rides/<int:ride_pk>/unfulfilled/", views.ride_unfulfilled, name="ride_unfulfilled"),
    path("alarms/<int:alarm_pk>/acknowledge/", views.alarm_acknowledge, name="alarm_acknowledge"),
    path("links/", views.links, name="links"),
    path("links/new/", views.link_create, name="link_create"),
    path("links/<int:link_pk>/revoke/", views.link_revoke, name="link_revoke"),
]
