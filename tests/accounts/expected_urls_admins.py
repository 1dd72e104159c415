# (url name, args): GET status for anonymous, superadmin, admin_a, admin_b, mailbox.
EXPECTED = {
    ("admins:admin-list", ()): ("login", 200, 404, 404, 404),
    ("admins:admin-create", ()): ("login", 200, 404, 404, 404),
    ("admins:admin-edit", (999999,)): ("login", 404, 404, 404, 404),
    ("admins:audit", ()): ("login", 200, 200, 200, 404),
}
EXPECTED.update({
    ("admins:admin-password", (999999,)): ("login", 404, 404, 404, 404),
    ("admins:admin-active", (999999,)): ("login", 405, 404, 404, 404),
    ("admins:admin-delete", (999999,)): ("login", 404, 404, 404, 404),
})
