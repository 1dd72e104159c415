from typing import Any

from django.contrib.auth.models import User
from django.core.management.base import CommandError, CommandParser

from accounts import services, twofactor
from accounts.models import admin_accounts
from core.commands import SubcommandCommand, actor
from domains import selectors
from domains.models import DomainAdmin


class Command(SubcommandCommand):
    help = "Panel accounts: superadmins and domain admins."
    actions = {
        "add": "add an account (password from stdin or a prompt)",
        "domains": "set the domains a domain admin manages",
        "list": "list panel accounts",
        "passwd": "set an account's password (from stdin or a prompt); its sessions end",
        "disable": "stop an account signing in; its sessions end",
        "enable": "let a disabled account sign in again",
        "delete": "remove an account and its domain grants",
        "reset-two-factor": "remove an account's authenticator and recovery codes (a lost "
                            "phone); its sessions end",
    }

    def add_action(self, parser: CommandParser, action: str) -> None:
        if action == "list":
            parser.add_argument("--json", action="store_true")
            return
        parser.add_argument("username")
        if action == "passwd":
            parser.add_argument("--password-stdin", action="store_true")
        if action in ("passwd", "disable", "enable", "delete", "reset-two-factor"):
            return
        parser.add_argument("--domain", action="append", default=[], metavar="DOMAIN",
                            help="a domain this admin manages (repeat for several)")
        if action == "add":
            parser.add_argument("--superadmin", action="store_true")
            parser.add_argument("--password-stdin", action="store_true")

    def do_add(self, **o: Any) -> None:
        if o["superadmin"] and o["domain"]:
            raise CommandError("a superadmin manages every domain; drop --domain")
        domains = [selectors.domain_by_name(name) for name in o["domain"]]
        user = services.create_admin(actor=actor(), username=o["username"],
                                     password=self.read_password(o),
                                     superadmin=o["superadmin"], domains=domains)
        self.stdout.write(f"added {user.username}")

    def do_domains(self, **o: Any) -> None:
        user = User.objects.filter(username=o["username"].strip().lower()).first()
        if user is None or user.is_superuser:
            raise CommandError(f"{o['username']} is not a domain admin")
        services.set_admin_domains(actor=actor(), user=user,
                                   domains=[selectors.domain_by_name(n) for n in o["domain"]])
        self.stdout.write(f"{user.username} manages {', '.join(o['domain']) or 'no domain'}")

    def do_passwd(self, **o: Any) -> None:
        user = self._admin(o["username"])
        services.set_admin_password(actor=actor(), user=user, password=self.read_password(o))
        self.stdout.write(f"changed the password of {user.username}")

    def do_disable(self, **o: Any) -> None:
        user = self._admin(o["username"])
        services.set_admin_active(actor=actor(), user=user, active=False)
        self.stdout.write(f"disabled {user.username}")

    def do_enable(self, **o: Any) -> None:
        user = self._admin(o["username"])
        services.set_admin_active(actor=actor(), user=user, active=True)
        self.stdout.write(f"enabled {user.username}")

    def do_delete(self, **o: Any) -> None:
        user = self._admin(o["username"])
        services.delete_admin(actor=actor(), user=user)
        self.stdout.write(f"deleted {user.username}")

    def do_reset_two_factor(self, **o: Any) -> None:
        # The way back for a sole superadmin who lost both the phone and the codes.
        user = self._admin(o["username"])
        ended = twofactor.reset_two_factor(actor=actor(), user=user)
        self.stdout.write(f"reset the two-factor sign-in of {user.username}; "
                          f"{ended} session(s) ended")

    def _admin(self, username: str) -> User:
        user = admin_accounts().filter(username=username.strip().lower()).first()
        if user is None:
            raise CommandError(f"{username} is not an admin")
        return user

    def do_list(self, **o: Any) -> None:
        grants: dict[int, list[str]] = {}
        for user_id, name in DomainAdmin.objects.values_list("user_id", "domain__name"):
            grants.setdefault(user_id, []).append(name)
        rows = (
            {"username": u.username,
             "role": "superadmin" if u.is_superuser else "domain admin",
             "domains": ",".join(sorted(grants.get(u.pk, []))) or "-"}
            for u in admin_accounts().order_by("username")
        )
        self.emit(rows, ["username", "role", "domains"], o["json"])
