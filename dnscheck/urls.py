from django.urls import path

from dnscheck import views

app_name = "dnscheck"
urlpatterns = [
    path("domains/<str:name>/health/", views.health, name="health"),
    path("domains/<str:name>/health/check/", views.check_now, name="check"),
    path("domains/<str:name>/records.zone", views.zone_file, name="zone-file"),
    path("alias-domains/<str:alias>/records.zone", views.alias_zone_file,
         name="alias-zone-file"),
]
