# (url name, args): GET status for anonymous, superadmin, admin_a, admin_b, mailbox.
EXPECTED = {
    ("accounts:admin-list", ()): ("login", 200, 404, 404, 404),
    ("accounts:admin-create", ()): ("login", 200, 404, 404, 404),
    ("accounts:admin-edit", (999999,)): ("login", 404, 404, 404, 404),
    ("accounts:audit", ()): ("login", 200, 200, 200, 404),
}
EXPECTED.update({
    ("accounts:admin-password", (999999,)): ("login", 404, 404, 404, 404),
    ("accounts:admin-active", (999999,)): ("login", 405, 404, 404, 404),
    ("accounts:admin-delete", (999999,)): ("login", 404, 404, 404, 404),
})
# Every account's own sessions; an admin's own account and password; the domain picker.
EXPECTED.update({
    ("accounts:sessions", ()): ("login", 200, 200, 200, 200),
    ("accounts:session-end", (999999,)): ("login", 405, 405, 405, 405),
    ("accounts:session-end-others", ()): ("login", 405, 405, 405, 405),
    ("accounts:account", ()): ("login", 200, 200, 200, 404),
    ("accounts:own-password", ()): ("login", 200, 200, 200, 404),
    ("accounts:admin-domain-suggest", ()): ("login", 200, 404, 404, 404),
})
