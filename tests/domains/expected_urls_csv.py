"""Permission-walk rows for the CSV export/import pages (domains/urls.py).

Persona order: anonymous, superadmin, admin_a, admin_b, mailbox.
"""

LOGIN = "login"
NO_JOB = 999999

EXPECTED = {
    ("domains:export-mailboxes", ("a.example",)): (LOGIN, 200, 200, 404, 404),
    ("domains:export-aliases", ("a.example",)): (LOGIN, 200, 200, 404, 404),
    ("domains:import", ("a.example",)): (LOGIN, 200, 200, 404, 404),
    ("domains:import-job", ("a.example", NO_JOB)): (LOGIN, 404, 404, 404, 404),
    # POST only: GET is 405 once the domain is known to be within reach.
    ("domains:import-confirm", ("a.example", NO_JOB)): (LOGIN, 405, 405, 404, 404),
    # POST only too: the download destroys the generated passwords.
    ("domains:import-passwords", ("a.example", NO_JOB)): (LOGIN, 405, 405, 404, 404),
}
