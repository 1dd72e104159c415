from django.contrib.auth import views as auth_views
from django.urls import include, path

from mailadmin import views

urlpatterns = [
    path("", views.home, name="home"),
    path("login/", auth_views.LoginView.as_view(redirect_authenticated_user=True),
         name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("", include("accounts.urls")),
    path("", include("domains.urls")),
    path("", include("dnscheck.urls")),
    path("", include("mailhost.urls")),
    path("", include("dkim.urls")),
    path("", include("clientsetup.urls")),
    path("", include("apppasswords.urls")),
]
