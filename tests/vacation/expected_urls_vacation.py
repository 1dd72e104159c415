# (url name, args): GET status for anonymous, superadmin, admin_a, admin_b, mailbox.
# The mailbox user's own page is theirs alone; the admins' page is the mailbox's
# reach: another domain's admin, a mailbox user and a missing address get 404.
EXPECTED = {
    ("vacation:own", ()): ("login", 404, 404, 404, 200),
    ("vacation:mailbox", ("bob@a.example",)): ("login", 200, 200, 404, 404),
    ("vacation:mailbox", ("carol@b.example",)): ("login", 200, 404, 200, 404),
    ("vacation:mailbox", ("nobody@a.example",)): ("login", 404, 404, 404, 404),
}
