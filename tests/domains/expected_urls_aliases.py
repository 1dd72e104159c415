# (url name, args): GET status for anonymous, superadmin, admin_a, admin_b, mailbox.
# The world has the alias info@a.example, no catch-all and no alias domain: the
# alias domain pages (and a missing catch-all) are walked with names that do not
# exist; tests/domains/test_alias_views.py opens real ones.
EXPECTED = {
    ("domains:alias-list", ("a.example",)): ("login", 200, 200, 404, 404),
    ("domains:alias-list", ("b.example",)): ("login", 200, 404, 200, 404),
    ("domains:alias-create", ("a.example",)): ("login", 200, 200, 404, 404),
    ("domains:alias-edit", ("info@a.example",)): ("login", 200, 200, 404, 404),
    ("domains:alias-edit", ("@a.example",)): ("login", 404, 404, 404, 404),
    ("domains:alias-delete", ("info@a.example",)): ("login", 200, 200, 404, 404),
    ("domains:aliasdomain-create", ("a.example",)): ("login", 200, 404, 404, 404),
    ("domains:aliasdomain-edit", ("none.example",)): ("login", 404, 404, 404, 404),
    ("domains:aliasdomain-delete", ("none.example",)): ("login", 404, 404, 404, 404),
}
