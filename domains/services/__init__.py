"""Every write to domains, mailboxes, aliases and alias domains.

Each function validates, runs in one transaction and writes an audit row.
Limits are checked while holding a row lock on the domain, so parallel
creations in one domain are serialised and can never overshoot a limit.
Views, tasks and commands call these; nothing else saves these models.

One module per concern; this package names the public ones, so callers
write `services.create_mailbox(...)` whichever module holds it. Modules
inside the package import each other only downwards: the writes (domains,
mailboxes, aliases, alias_domains, imports, import_jobs, logins) use the
shared pieces (_common, limits, destinations, kept_maildirs,
password_policy), never one another.
"""

from domains.selectors import DomainUsage, domain_usage
from domains.services._common import DESCRIPTION_MAX, NAME_MAX, maildir_path
from domains.services.alias_domains import (
    create_alias_domain,
    delete_alias_domain,
    set_alias_domain_active,
)
from domains.services.aliases import create_alias, delete_alias, update_alias
from domains.services.destinations import DESTINATIONS_MAX, ELSEWHERE_ACTOR
from domains.services.domains import (
    ROLE_ADDRESSES,
    create_domain,
    delete_domain,
    on_domain_deletion,
    record_export,
    set_domain_active,
    update_domain,
)
from domains.services.import_jobs import (
    EXPIRED_PREVIEW,
    GENERATED_KEPT,
    confirm_import_job,
    sweep_import_jobs,
    take_generated_passwords,
)
from domains.services.imports import (
    AliasImport,
    MailboxImport,
    PreparedImport,
    alias_import_problems,
    import_aliases,
    import_mailboxes,
    import_mailboxes_with_state,
    mailbox_import_problems,
    prepare_alias_import,
    prepare_mailbox_import,
    write_import,
)
from domains.services.kept_maildirs import (
    KEPT_MAILDIR_CHOICES,
    forget_kept_maildir,
    purge_expired_kept_maildirs,
    purge_kept_maildir,
    remove_kept_maildir,
)
from domains.services.logins import verify_mailbox_login
from domains.services.mailboxes import (
    change_own_password,
    create_mailbox,
    delete_mailbox,
    restore_kept_maildir,
    set_mailbox_active,
    set_mailbox_password,
    update_mailbox,
)
from domains.services.password_policy import (
    GENERATE_ATTEMPTS,
    generate_password,
    password_policy_problems,
)
from domains.services.quota import sync_quota_usage

__all__ = [
    "DESCRIPTION_MAX",
    "DESTINATIONS_MAX",
    "ELSEWHERE_ACTOR",
    "EXPIRED_PREVIEW",
    "GENERATED_KEPT",
    "GENERATE_ATTEMPTS",
    "KEPT_MAILDIR_CHOICES",
    "NAME_MAX",
    "ROLE_ADDRESSES",
    "AliasImport",
    "DomainUsage",
    "MailboxImport",
    "PreparedImport",
    "alias_import_problems",
    "change_own_password",
    "confirm_import_job",
    "create_alias",
    "create_alias_domain",
    "create_domain",
    "create_mailbox",
    "delete_alias",
    "delete_alias_domain",
    "delete_domain",
    "delete_mailbox",
    "domain_usage",
    "forget_kept_maildir",
    "generate_password",
    "import_aliases",
    "import_mailboxes",
    "import_mailboxes_with_state",
    "mailbox_import_problems",
    "maildir_path",
    "on_domain_deletion",
    "password_policy_problems",
    "prepare_alias_import",
    "prepare_mailbox_import",
    "purge_expired_kept_maildirs",
    "purge_kept_maildir",
    "record_export",
    "remove_kept_maildir",
    "restore_kept_maildir",
    "set_alias_domain_active",
    "set_domain_active",
    "set_mailbox_active",
    "set_mailbox_password",
    "sweep_import_jobs",
    "sync_quota_usage",
    "take_generated_passwords",
    "update_alias",
    "update_domain",
    "update_mailbox",
    "verify_mailbox_login",
    "write_import",
]
