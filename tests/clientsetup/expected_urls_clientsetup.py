# (url name, args): GET status for anonymous, superadmin, admin_a, admin_b, mailbox.
# The autoconfig/autodiscover answers are public; the walk asks without an
# address on the test host, which names no served domain: an empty 404 for all.
EXPECTED = {
    ("clientsetup:autoconfig", ()): (404, 404, 404, 404, 404),
    ("clientsetup:autoconfig-well-known", ()): (404, 404, 404, 404, 404),
    ("clientsetup:autodiscover", ()): (404, 404, 404, 404, 404),
    ("clientsetup:autodiscover-outlook", ()): (404, 404, 404, 404, 404),
    ("clientsetup:connect", ()): ("login", 404, 404, 404, 200),
    ("clientsetup:welcome", ("bob@a.example",)): ("login", 200, 200, 404, 404),
    ("clientsetup:welcome", ("carol@b.example",)): ("login", 200, 404, 200, 404),
    ("clientsetup:welcome", ("nobody@a.example",)): ("login", 404, 404, 404, 404),
    ("clientsetup:records", ("a.example",)): ("login", 200, 200, 404, 404),
    ("clientsetup:records", ("none.example",)): ("login", 404, 404, 404, 404),
}
