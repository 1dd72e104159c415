from django.urls import path

from clientsetup import views

app_name = "clientsetup"
urlpatterns = [
    # Public: asked by mail programs, on autoconfig.<domain> and on <domain> itself.
    path("mail/config-v1.1.xml", views.autoconfig, name="autoconfig"),
    path(".well-known/autoconfig/mail/config-v1.1.xml", views.autoconfig,
         name="autoconfig-well-known"),
    # Outlook asks with either spelling; paths are case-sensitive here.
    path("autodiscover/autodiscover.xml", views.autodiscover, name="autodiscover"),
    path("Autodiscover/Autodiscover.xml", views.autodiscover, name="autodiscover-outlook"),
    path("me/mail-client/", views.connect, name="connect"),
    path("mailboxes/<str:email>/welcome/", views.welcome_sheet, name="welcome"),
    path("domains/<str:name>/mail-clients/", views.domain_records, name="records"),
]
