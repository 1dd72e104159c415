from django.urls import path

from vacation import views

app_name = "vacation"
urlpatterns = [
    path("me/auto-reply/", views.own_rules, name="own"),
    path("mailboxes/<str:email>/auto-reply/", views.mailbox_rules, name="mailbox"),
]
