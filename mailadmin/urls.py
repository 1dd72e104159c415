from django.contrib.auth import views as auth_views
from django.urls import include, path

from accounts.views_signin import SignInView
from core import outage
from mailadmin import views

# A database outage met in a middleware (the session, the user) is a 503 too.
handler500 = outage.server_error

urlpatterns = [
    path("", views.home, name="home"),
    # Password first; accounts with two-factor sign-in go on to its second step.
    path("login/", SignInView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("", include("accounts.urls")),
    path("", include("domains.urls")),
    path("", include("dnscheck.urls")),
    path("", include("mailhost.urls")),
    path("", include("dkim.urls")),
    path("", include("clientsetup.urls")),
    path("", include("apppasswords.urls")),
    path("", include("vacation.urls")),
]
