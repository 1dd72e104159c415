# (url name, args): GET status for anonymous, superadmin, admin_a, admin_b, mailbox.
# "Check now" is POST only: a GET is 405 for those who may see the domain and
# 404 for everyone else, like every other page outside a user's reach.
EXPECTED = {
    ("dnscheck:health", ("a.example",)): ("login", 200, 200, 404, 404),
    ("dnscheck:health", ("b.example",)): ("login", 200, 404, 200, 404),
    ("dnscheck:health", ("none.example",)): ("login", 404, 404, 404, 404),
    ("dnscheck:check", ("a.example",)): ("login", 405, 405, 404, 404),
    ("dnscheck:check", ("none.example",)): ("login", 404, 404, 404, 404),
}
# The records to publish as a zone file: the domain's admins and superadmins only.
EXPECTED.update({
    ("dnscheck:zone-file", ("a.example",)): ("login", 200, 200, 404, 404),
    ("dnscheck:zone-file", ("b.example",)): ("login", 200, 404, 200, 404),
    ("dnscheck:zone-file", ("none.example",)): ("login", 404, 404, 404, 404),
})
EXPECTED[("dnscheck:alias-zone-file", ("none.example",))] = ("login", 404, 404, 404, 404)
