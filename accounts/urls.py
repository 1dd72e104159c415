from django.urls import path

from accounts import views, views_admins, views_audit

app_name = "accounts"
urlpatterns = [
    # A mailbox user's own account.
    path("me/", views.me, name="me"),
    path("me/password/", views.password, name="password"),
    path("me/password/hint/", views.password_hint, name="password-hint"),
    # Panel accounts and the audit log.
    path("admins/", views_admins.admin_list, name="admin-list"),
    path("admins/new/", views_admins.admin_create, name="admin-create"),
    path("admins/<int:pk>/", views_admins.admin_edit, name="admin-edit"),
    path("admins/<int:pk>/password/", views_admins.admin_password, name="admin-password"),
    path("admins/<int:pk>/active/", views_admins.admin_active, name="admin-active"),
    path("admins/<int:pk>/delete/", views_admins.admin_delete, name="admin-delete"),
    path("audit/", views_audit.audit_log, name="audit"),
]
