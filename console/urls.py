from django.urls import path

from console import day, links, reports, views

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
    path("day/", day.day_view, name="day_tomorrow"),
    path("day/<str:service_date>/", day.day_view, name="day"),
    path("day/<str:service_date>/plan/", day.day_plan, name="day_plan"),
    path("day/<str:service_date>/publish/", day.day_publish, name="day_publish"),
    path("day/<str:service_date>/replan/", day.day_replan, name="day_replan"),
    path("day/<str:service_date>/trips/<int:ride_pk>/move/", day.trip_move, name="day_move"),
    path("day/<str:service_date>/trips/<int:ride_pk>/lock/", day.trip_lock, name="day_lock"),
    path("reports/", reports.reports_view, name="reports"),
    path("reports.csv", reports.reports_csv, name="reports_csv"),
    path("links/", links.links, name="links"),
    path("links/new/", links.link_create, name="link_create"),
    path("links/<int:link_pk>/permissions/", links.link_permissions, name="link_permissions"),
    path("links/<int:link_pk>/accept/", links.link_accept, name="link_accept"),
    path("links/<int:link_pk>/revoke/", links.link_revoke, name="link_revoke"),
    path("alarms/<int:alarm_pk>/acknowledge/", views.alarm_acknowledge, name="alarm_acknowledge"),
]
