# (url name, args): GET status for anonymous, superadmin, admin_a, admin_b, mailbox.
# The world keeps no Maildir: restore and purge are walked with an id that
# does not exist; tests/domains/test_kept_maildir_purge.py opens real ones.
EXPECTED = {
    ("domains:kept-maildir-list", ()): ("login", 200, 404, 404, 404),
    ("domains:kept-maildir-restore", (999999,)): ("login", 404, 404, 404, 404),
    ("domains:kept-maildir-purge", (999999,)): ("login", 404, 404, 404, 404),
}
