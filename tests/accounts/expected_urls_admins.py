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
