from django.urls import path

from domains import views

app_name = "domains"
urlpatterns = [
    path("domains/", views.domain_list, name="domain-list"),
    path("domains/new/", views.domain_create, name="domain-create"),
    path("domains/<str:name>/", views.domain_detail, name="domain-detail"),
    path("domains/<str:name>/edit/", views.domain_edit, name="domain-edit"),
    path("domains/<str:name>/delete/", views.domain_delete, name="domain-delete"),
    path("domains/<str:name>/mailboxes/new/", views.mailbox_create, name="mailbox-create"),
    path("domains/<str:name>/mailboxes/check/", views.mailbox_check, name="mailbox-check"),
    path("mailboxes/", views.mailbox_list, name="mailbox-list"),
    path("mailboxes/<str:email>/", views.mailbox_edit, name="mailbox-edit"),
    path("mailboxes/<str:email>/delete/", views.mailbox_delete, name="mailbox-delete"),
]
