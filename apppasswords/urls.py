from django.urls import path

from apppasswords import views

app_name = "apppasswords"
urlpatterns = [
    path("me/app-passwords/", views.own_list, name="own"),
    path("me/app-passwords/<int:pk>/revoke/", views.own_revoke, name="own-revoke"),
    path("mailboxes/<str:email>/app-passwords/", views.mailbox_list, name="mailbox"),
    path("mailboxes/<str:email>/app-passwords/<int:pk>/revoke/", views.mailbox_revoke,
         name="mailbox-revoke"),
    path("domains/<str:name>/app-passwords-required/", views.domain_required,
         name="domain-required"),
]
