# (url name, args): GET status for anonymous, superadmin, admin_a, admin_b, mailbox.
EXPECTED = {
    # The DKIM key of a domain: its admins and superadmins; removing it is POST only.
    ("dkim:key", ("a.example",)): ("login", 200, 200, 404, 404),
    ("dkim:key", ("b.example",)): ("login", 200, 404, 200, 404),
    ("dkim:key", ("none.example",)): ("login", 404, 404, 404, 404),
    ("dkim:remove", ("a.example",)): ("login", 405, 405, 404, 404),
    ("dkim:remove", ("none.example",)): ("login", 404, 404, 404, 404),
    # Generating a key and asking DNS now: POST only, the domain's admins only.
    ("dkim:generate", ("a.example",)): ("login", 405, 405, 404, 404),
    ("dkim:generate", ("b.example",)): ("login", 405, 404, 405, 404),
    ("dkim:generate", ("none.example",)): ("login", 404, 404, 404, 404),
    ("dkim:check", ("a.example",)): ("login", 405, 405, 404, 404),
    ("dkim:check", ("b.example",)): ("login", 405, 404, 405, 404),
    ("dkim:check", ("none.example",)): ("login", 404, 404, 404, 404),
    # Rotating now and the rotation interval: POST only, the domain's admins only.
    ("dkim:rotate", ("a.example",)): ("login", 405, 405, 404, 404),
    ("dkim:rotate", ("b.example",)): ("login", 405, 404, 405, 404),
    ("dkim:rotate", ("none.example",)): ("login", 404, 404, 404, 404),
    ("dkim:rotation", ("a.example",)): ("login", 405, 405, 404, 404),
    ("dkim:rotation", ("b.example",)): ("login", 405, 404, 405, 404),
    ("dkim:rotation", ("none.example",)): ("login", 404, 404, 404, 404),
}
