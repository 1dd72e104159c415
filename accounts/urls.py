from django.urls import path

from accounts import (
    views,
    views_admins,
    views_audit,
    views_own,
    views_securitykeys,
    views_signin,
    views_twofactor,
)

app_name = "accounts"
urlpatterns = [
    # A mailbox user's own account.
    path("me/", views.me, name="me"),
    path("me/password/", views.password, name="password"),
    path("me/password/hint/", views.password_hint, name="password-hint"),
    # Every account's own sessions; an admin's own account and password.
    path("sessions/", views_own.session_list, name="sessions"),
    path("sessions/<int:pk>/end/", views_own.session_end, name="session-end"),
    path("sessions/end-others/", views_own.session_end_others, name="session-end-others"),
    path("account/", views_own.account, name="account"),
    path("account/password/", views_own.own_password, name="own-password"),
    # Panel accounts and the audit log.
    path("admins/", views_admins.admin_list, name="admin-list"),
    path("admins/new/", views_admins.admin_create, name="admin-create"),
    path("admins/domain-suggestions/", views_admins.admin_domain_suggest,
         name="admin-domain-suggest"),
    path("admins/<int:pk>/", views_admins.admin_edit, name="admin-edit"),
    path("admins/<int:pk>/password/", views_admins.admin_password, name="admin-password"),
    path("admins/<int:pk>/active/", views_admins.admin_active, name="admin-active"),
    path("admins/<int:pk>/delete/", views_admins.admin_delete, name="admin-delete"),
    path("audit/", views_audit.audit_log, name="audit"),
    # Two-factor sign-in: the second step of sign-in, an account's own set-up, the policy.
    path("login/code/", views_signin.sign_in_code, name="sign-in-code"),
    path("login/enrol/", views_signin.sign_in_enrol, name="sign-in-enrol"),
    path("login/key/begin/", views_securitykeys.sign_in_key_begin, name="sign-in-key-begin"),
    path("login/key/complete/", views_securitykeys.sign_in_key_complete,
         name="sign-in-key-complete"),
    path("two-factor/", views_twofactor.two_factor, name="two-factor"),
    path("two-factor/enrol/", views_twofactor.two_factor_enrol, name="two-factor-enrol"),
    path("two-factor/disable/", views_twofactor.two_factor_disable, name="two-factor-disable"),
    path("two-factor/recovery-codes/", views_twofactor.two_factor_recovery,
         name="two-factor-recovery"),
    path("two-factor/keys/new/", views_securitykeys.security_key_add, name="security-key-add"),
    path("two-factor/keys/new/begin/", views_securitykeys.security_key_begin,
         name="security-key-begin"),
    path("two-factor/keys/new/complete/", views_securitykeys.security_key_complete,
         name="security-key-complete"),
    path("two-factor/keys/added/", views_securitykeys.security_key_added,
         name="security-key-added"),
    path("two-factor/keys/<int:pk>/remove/", views_securitykeys.security_key_remove,
         name="security-key-remove"),
    path("admins/<int:pk>/two-factor/reset/", views_twofactor.admin_two_factor_reset,
         name="admin-two-factor-reset"),
    path("mailboxes/<str:email>/two-factor/reset/", views_twofactor.mailbox_two_factor_reset,
         name="mailbox-two-factor-reset"),
    path("two-factor/policy/", views_twofactor.two_factor_policy, name="two-factor-policy"),
]
