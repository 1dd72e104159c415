from django.urls import path

from mailhost import views

app_name = "mailhost"
urlpatterns = [
    path("mail-host/", views.mail_host, name="mail-host"),
    path("mail-host/setup/", views.setup, name="setup"),
    path("mail-host/check/", views.config_check, name="config-check"),
    path("mail-host/apply/", views.config_apply, name="config-apply"),
]
