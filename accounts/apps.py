from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "accounts"

    def ready(self) -> None:
        from django.contrib.auth.signals import user_logged_in, user_login_failed

        from accounts.security import log_failed_sign_in
        from accounts.sessions import record_sign_in

        user_login_failed.connect(log_failed_sign_in, dispatch_uid="mailadmin.auth.failure")
        user_logged_in.connect(record_sign_in, dispatch_uid="mailadmin.auth.sign_in")
