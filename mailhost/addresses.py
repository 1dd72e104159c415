"""The characters the mail daemons accept in an address this host serves.

Kept below the domains app: the validators refuse what is left out here, and
Dovecot's auth_username_chars is rendered from the same list
(mailhost/render.py), so every mailbox the panel creates can sign in.
"""

# RFC 5322 dot-atom in ASCII, less `/` and `%`: the local part becomes a
# directory name under the Maildir root and a Dovecot %n expansion.
# The one list of the non-alphanumeric characters a local part may hold.
LOCAL_PART_SPECIALS = "!#$&'*+-=?^_`{|}~"
# Valid in an address elsewhere (an alias may forward to one), but not in an
# address this server hosts: the daemons read these characters as syntax.
NOT_HOSTED = {
    "!": "Postfix reads ! as source routing (site!user) and refuses such a recipient",
}
NOT_A_MAILBOX = {
    "+": "+ starts an address extension (mail to bob+news@ goes to bob@), so Dovecot "
         "would deliver it to the part before the +",
}
# What a mailbox's local part may hold besides letters, digits and dots:
# exactly what Dovecot's auth_username_chars is rendered from.
MAILBOX_SPECIALS = "".join(
    c for c in LOCAL_PART_SPECIALS if c not in NOT_HOSTED and c not in NOT_A_MAILBOX)
