from django.urls import path

from accounts import views_admins

app_name = "admins"
urlpatterns = [
    path("admins/", views_admins.admin_list, name="admin-list"),
    path("admins/new/", views_admins.admin_create, name="admin-create"),
    path("admins/<int:pk>/", views_admins.admin_edit, name="admin-edit"),
    path("audit/", views_admins.audit_log, name="audit"),
]
