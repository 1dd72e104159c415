from django.urls import path

from accounts import views

app_name = "accounts"
urlpatterns = [
    path("", views.me, name="me"),
    path("password/", views.password, name="password"),
    path("password/hint/", views.password_hint, name="password-hint"),
]
