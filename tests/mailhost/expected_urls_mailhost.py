# (url name, args): GET status for anonymous, superadmin, admin_a, admin_b, mailbox.
EXPECTED = {
    ("mailhost:mail-host", ()): ("login", 200, 404, 404, 404),
    ("mailhost:setup", ()): ("login", 200, 404, 404, 404),
    ("mailhost:config-check", ()): ("login", 405, 404, 404, 404),
    ("mailhost:config-apply", ()): ("login", 405, 404, 404, 404),
}
