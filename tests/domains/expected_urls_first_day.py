# (url name, args): GET status for anonymous, superadmin, admin_a, admin_b, mailbox.
# The "New mailbox" / "New alias" pickers go straight to the one domain of an
# admin who has one (302); the superadmin reaches two and picks.
EXPECTED = {
    ("domains:mailbox-new", ()): ("login", 200, 302, 302, 404),
    ("domains:alias-new", ()): ("login", 200, 302, 302, 404),
    ("domains:aliases", ()): ("login", 200, 200, 200, 404),
}
