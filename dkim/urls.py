from django.urls import path

from dkim import views

# Under the domain's health page, where they were when dnscheck held the key.
app_name = "dkim"
urlpatterns = [
    path("domains/<str:name>/health/dkim/", views.key, name="key"),
    path("domains/<str:name>/health/dkim/generate/", views.generate, name="generate"),
    path("domains/<str:name>/health/dkim/check/", views.check, name="check"),
    path("domains/<str:name>/health/dkim/remove/", views.remove, name="remove"),
    path("domains/<str:name>/health/dkim/rotate/", views.rotate, name="rotate"),
    path("domains/<str:name>/health/dkim/rotation/", views.rotation, name="rotation"),
]
