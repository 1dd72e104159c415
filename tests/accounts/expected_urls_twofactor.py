# Two-factor sign-in (issue 13 §4). GET status for anonymous, superadmin, admin_a, admin_b,
# mailbox. The second sign-in steps send a session without a right password back to sign
# in and a signed-in one home; tests/accounts/test_two_factor.py walks every URL with a
# half-signed-in session.
EXPECTED = {
    ("accounts:sign-in-code", ()): ("login", 302, 302, 302, 302),
    ("accounts:sign-in-enrol", ()): ("login", 302, 302, 302, 302),
    ("accounts:two-factor", ()): ("login", 200, 200, 200, 200),
    ("accounts:two-factor-enrol", ()): ("login", 200, 200, 200, 200),
    ("accounts:two-factor-disable", ()): ("login", 405, 405, 405, 405),
    ("accounts:two-factor-recovery", ()): ("login", 405, 405, 405, 405),
    ("accounts:two-factor-policy", ()): ("login", 200, 404, 404, 404),
}
# Someone else's two-factor reset (POST only). An admin's: superadmins only. A mailbox
# user's: the mailbox's reach is checked before the method, so another domain's admin
# gets the 404 it gets for the mailbox page.
EXPECTED.update({
    ("accounts:admin-two-factor-reset", (999999,)): ("login", 405, 404, 404, 404),
    ("accounts:mailbox-two-factor-reset", ("bob@a.example",)): ("login", 405, 405, 404, 404),
    ("accounts:mailbox-two-factor-reset", ("nobody@a.example",)): ("login", 404, 404, 404, 404),
})
# Security keys (WebAuthn). Adding one: the naming page (a session at the sign-in set-up
# step sees it too; others are sent to sign in); begin/complete are POST-only JSON, as
# are the sign-in answer's (tests/accounts/test_security_keys.py posts to each in every
# state). The page after adding goes back to the two-factor page when nothing waits.
EXPECTED.update({
    ("accounts:security-key-add", ()): ("login", 200, 200, 200, 200),
    ("accounts:security-key-begin", ()): (405, 405, 405, 405, 405),
    ("accounts:security-key-complete", ()): (405, 405, 405, 405, 405),
    ("accounts:security-key-added", ()): ("login", 302, 302, 302, 302),
    ("accounts:security-key-remove", (999999,)): ("login", 405, 405, 405, 405),
    ("accounts:sign-in-key-begin", ()): (405, 405, 405, 405, 405),
    ("accounts:sign-in-key-complete", ()): (405, 405, 405, 405, 405),
})
