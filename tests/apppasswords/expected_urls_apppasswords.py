# (url name, args): GET status for anonymous, superadmin, admin_a, admin_b, mailbox.
EXPECTED = {
    ("apppasswords:own", ()): ("login", 404, 404, 404, 200),
    ("apppasswords:own-revoke", (999999,)): ("login", 404, 404, 404, 405),
    ("apppasswords:mailbox", ("bob@a.example",)): ("login", 200, 200, 404, 404),
    ("apppasswords:mailbox-revoke", ("bob@a.example", 999999)): ("login", 405, 405, 405, 404),
    ("apppasswords:domain-required", ("a.example",)): ("login", 405, 405, 405, 404),
}
