"""Forms for the panel. They only shape input; the services decide."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django import forms

from domains.validators import parse_size

# What the browser's password manager should do with a field: offer to make
# and save a new password, or fill in the saved one.
NEW_PASSWORD = {"autocomplete": "new-password"}
CURRENT_PASSWORD = {"autocomplete": "current-password"}


class DomainForm(forms.Form):
    name = forms.CharField(max_length=1000, label="Domain name",
                           help_text="International names are stored as punycode.")
    description = forms.CharField(max_length=1000, required=False)
    max_mailboxes = forms.IntegerField(min_value=0, initial=0, label="Mailbox limit",
                                       help_text="0 is no limit")
    max_aliases = forms.IntegerField(min_value=0, initial=0, label="Alias limit",
                                     help_text="0 is no limit")
    max_quota = forms.CharField(max_length=40, initial="0", label="Total quota",
                                help_text="for all mailboxes, e.g. 50G; 0 is no limit")
    default_quota = forms.CharField(max_length=40, initial="0", label="Default mailbox quota",
                                    help_text="e.g. 2G; 0 is unlimited")

    def clean_max_quota(self) -> str:
        return _size(self.cleaned_data["max_quota"])

    def clean_default_quota(self) -> str:
        return _size(self.cleaned_data["default_quota"])


class DomainCreateForm(DomainForm):
    role_aliases = forms.BooleanField(
        required=False, initial=True, label="Create postmaster@ and abuse@",
        help_text="as aliases delivering to the address below: other mail servers write "
                  "to these when something is wrong (RFC 2142)")
    role_aliases_to = forms.CharField(
        max_length=254, required=False, label="postmaster@ and abuse@ deliver to",
        help_text="e.g. your own address, here or elsewhere")

    def clean(self) -> dict[str, object]:
        data = super().clean() or {}
        if data.get("role_aliases") and not str(data.get("role_aliases_to") or "").strip():
            self.add_error("role_aliases_to", "Give the address postmaster@ and abuse@ deliver "
                                              "to, or untick the box above.")
        return data

    def service_arguments(self) -> dict[str, Any]:
        """cleaned_data as create_domain takes it."""
        data = dict(self.cleaned_data)
        wanted = data.pop("role_aliases")
        data["role_aliases_to"] = data["role_aliases_to"] if wanted else ""
        return data

    def __init__(self, *args: object, earlier_kept_maildirs: bool = False,
                 **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        # Shown only once the service has refused for this reason, as the
        # mailbox form's reuse tick box is.
        if earlier_kept_maildirs:
            self.fields["kept_maildirs"] = forms.ChoiceField(
                label="Maildirs kept from an earlier domain of this name", required=False,
                widget=forms.RadioSelect, choices=[
                    ("reserve", "reserve their addresses (refused until a superadmin reuses "
                                "or forgets each)"),
                    ("remove", "record them as removed from the mail host")])


class DomainEditForm(DomainForm):
    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        del self.fields["name"]


class MailboxForm(forms.Form):
    local_part = forms.CharField(max_length=200, label="Address",
                                 help_text="the part before the @")

    def __init__(self, *args: object, check_url: str = "", kept_maildir: str = "",
                 address_problem: Callable[[str], str | None] | None = None,
                 **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        # The live check's answer, asked again on submit so that a taken
        # address shows together with the other problems of the form.
        self.address_problem = address_problem
        if kept_maildir:
            # Offered to superadmins only, once the address turns out to have kept mail.
            self.fields["reuse_kept_maildir"] = forms.BooleanField(
                required=False, label="Give this mailbox the kept mail",
                help_text=f"the Maildir of a deleted mailbox of this address, {kept_maildir}; "
                          "leave unticked for a new person")
        if check_url:
            # Checked as it is typed; the answer lands under the field.
            self.fields["local_part"].widget.attrs.update({
                "hx-get": check_url, "hx-trigger": "input changed delay:300ms",
                "hx-target": "#address-check", "autocomplete": "off"})
            self.live_messages = {"local_part": "address-check"}
    name = forms.CharField(max_length=1000, required=False)
    quota = forms.CharField(max_length=40, required=False,
                            help_text="e.g. 2G; empty for the domain's default, 0 is unlimited")
    password = forms.CharField(widget=forms.PasswordInput(attrs=NEW_PASSWORD), required=False,
                               strip=False,
                               help_text="leave both empty to generate one, shown once")
    password_again = forms.CharField(widget=forms.PasswordInput(attrs=NEW_PASSWORD),
                                     required=False, strip=False)

    def clean_local_part(self) -> str:
        local: str = self.cleaned_data["local_part"]
        problem = self.address_problem(local.strip()) if self.address_problem else None
        # With the reuse tick box offered, the service decides about the kept Maildir.
        if problem and "reuse_kept_maildir" not in self.fields:
            raise forms.ValidationError(problem)
        return local

    def clean_quota(self) -> str:
        return _size(self.cleaned_data["quota"])

    def clean(self) -> dict[str, object]:
        data = super().clean() or {}
        if data.get("password") != data.get("password_again"):
            self.add_error("password_again", "The two passwords differ.")
        return data


def _size(text: str) -> str:
    """A size as typed, checked now so its problem shows with the form's others."""
    if text.strip():
        parse_size(text)
    return text


class MailboxEditForm(forms.Form):
    name = forms.CharField(max_length=1000, required=False)
    quota = forms.CharField(max_length=40, help_text="e.g. 2G; 0 is unlimited")
    active = forms.BooleanField(required=False)

    def clean_quota(self) -> str:
        return _size(self.cleaned_data["quota"])

    password = forms.CharField(widget=forms.PasswordInput(attrs=NEW_PASSWORD), required=False,
                               strip=False, label="New password",
                               help_text="leave empty to keep the current one")
    generate = forms.BooleanField(required=False, label="Generate a new password",
                                  help_text="instead of typing one; shown once")

    def clean(self) -> dict[str, object]:
        data = super().clean() or {}
        if data.get("generate") and data.get("password"):
            self.add_error("password", "Type a new password or generate one, not both.")
        return data


class OwnPasswordForm(forms.Form):
    def __init__(self, *args: object, hint_url: str = "", **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        if hint_url:
            # The policy and a strength estimate, as it is typed, right under the field.
            self.fields["new"].widget.attrs.update({
                "hx-post": hint_url, "hx-trigger": "input changed delay:200ms",
                "hx-target": "#hint", "hx-swap": "innerHTML",
                # Only what is typed here: never the current password, in the same form.
                "hx-params": "new"})
            self.live_messages = {"new": "hint"}

    current = forms.CharField(widget=forms.PasswordInput(attrs=CURRENT_PASSWORD), strip=False,
                              label="Current password")
    new = forms.CharField(widget=forms.PasswordInput(attrs=NEW_PASSWORD), strip=False,
                          label="New password")
    new_again = forms.CharField(widget=forms.PasswordInput(attrs=NEW_PASSWORD), strip=False,
                                label="New password, again")

    def clean(self) -> dict[str, object]:
        data = super().clean() or {}
        if data.get("new") and data.get("new") != data.get("new_again"):
            self.add_error("new_again", "The two new passwords differ.")
        return data


class RestoreMailboxForm(forms.Form):
    """The new password of a mailbox made again from its kept Maildir."""

    password = forms.CharField(widget=forms.PasswordInput(attrs=NEW_PASSWORD), required=False,
                               strip=False,
                               help_text="leave both empty to generate one, shown once")
    password_again = forms.CharField(widget=forms.PasswordInput(attrs=NEW_PASSWORD),
                                     required=False, strip=False)

    def clean(self) -> dict[str, object]:
        data = super().clean() or {}
        if data.get("password") != data.get("password_again"):
            self.add_error("password_again", "The two passwords differ.")
        return data
