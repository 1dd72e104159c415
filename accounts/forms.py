from __future__ import annotations

import re
from typing import Any

from django import forms
from django.core.exceptions import ValidationError
from django.core.validators import RegexValidator

from domains import selectors
from domains.models import Domain

# What the browser's password manager should do with a field: offer to make
# and save a new password, or fill in the saved one.
NEW_PASSWORD = {"autocomplete": "new-password"}
CURRENT_PASSWORD = {"autocomplete": "current-password"}
# The <datalist> the domain search endpoint fills (htmx); typed names work without it.
DOMAIN_PICKER = {"list": "domain-suggestions", "autocomplete": "off", "spellcheck": "false",
                 "hx-trigger": "input changed delay:250ms", "hx-target": "#domain-suggestions",
                 "hx-swap": "innerHTML"}
# At most this many names in one list: above it the request is refused, not looked up.
MAX_NAMED_DOMAINS = 10_000


def _domains(text: str) -> list[Domain]:
    """The domains named in a comma- or line-separated list; every unknown name at once."""
    names = [n.strip() for n in text.replace("\n", ",").split(",") if n.strip()]
    if len(names) > MAX_NAMED_DOMAINS:
        raise ValidationError(f"Name at most {MAX_NAMED_DOMAINS} domains at once.")
    found: list[Domain] = []
    problems: list[str] = []
    for name in dict.fromkeys(names):
        try:
            found.append(selectors.domain_by_name(name))
        except ValidationError as error:
            problems.extend(error.messages)
    if problems:
        raise ValidationError(problems)
    return found


class AdminForm(forms.Form):
    # A new account's name: not the signed-in admin's own, which a browser would fill in.
    username = forms.CharField(max_length=150, label="User name",
                               widget=forms.TextInput(attrs={"autocomplete": "off"}),
                               help_text="usually the person's mail address")
    password = forms.CharField(widget=forms.PasswordInput(attrs=NEW_PASSWORD), strip=False)
    password_again = forms.CharField(widget=forms.PasswordInput(attrs=NEW_PASSWORD), strip=False)
    superadmin = forms.BooleanField(required=False, label="Superadmin (every domain)")
    domains = forms.CharField(max_length=200_000, required=False,
                              widget=forms.TextInput(attrs=DOMAIN_PICKER),
                              help_text="domains this admin manages, comma-separated; "
                                        "suggestions appear as you type")

    def __init__(self, *args: Any, suggest_url: str = "", **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if suggest_url:
            self.fields["domains"].widget.attrs["hx-get"] = suggest_url

    def clean_domains(self) -> list[Domain]:
        return _domains(self.cleaned_data["domains"])

    def clean(self) -> dict[str, object]:
        data = super().clean() or {}
        if data.get("password") != data.get("password_again"):
            self.add_error("password_again", "The two passwords differ.")
        return data


class AdminDomainsForm(forms.Form):
    """The picker: names to add (typed, with suggestions) and granted domains to remove
    (the chips' checkboxes). Only the change is posted, so it scales with the change,
    not with how many domains the admin has."""

    add = forms.CharField(max_length=200_000, required=False, label="Add domains",
                          widget=forms.TextInput(attrs=DOMAIN_PICKER),
                          help_text="comma-separated; suggestions appear as you type")
    remove = forms.MultipleChoiceField(required=False, choices=(), label="Remove",
                                       widget=forms.CheckboxSelectMultiple)

    def __init__(self, *args: Any, granted: list[str], suggest_url: str = "",
                 **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        remove = self.fields["remove"]
        assert isinstance(remove, forms.MultipleChoiceField)
        remove.choices = [(name, name) for name in granted]
        if suggest_url:
            self.fields["add"].widget.attrs["hx-get"] = suggest_url

    def clean_add(self) -> list[Domain]:
        return _domains(self.cleaned_data["add"])

    def clean_remove(self) -> list[Domain]:
        return _domains(",".join(self.cleaned_data["remove"]))


class AdminPasswordForm(forms.Form):
    """A superadmin's reset: typed, or (both fields empty) generated and shown once."""

    password = forms.CharField(widget=forms.PasswordInput(attrs=NEW_PASSWORD), strip=False,
                               label="New password", required=False,
                               help_text="leave both empty to generate one, shown once")
    password_again = forms.CharField(widget=forms.PasswordInput(attrs=NEW_PASSWORD), strip=False,
                                     required=False)

    def clean(self) -> dict[str, object]:
        data = super().clean() or {}
        if data.get("password") != data.get("password_again"):
            self.add_error("password_again", "The two passwords differ.")
        return data


class OwnAdminPasswordForm(forms.Form):
    current = forms.CharField(widget=forms.PasswordInput(attrs=CURRENT_PASSWORD), strip=False,
                              max_length=4096, label="Current password")
    new = forms.CharField(widget=forms.PasswordInput(attrs=NEW_PASSWORD), strip=False,
                          max_length=4096, label="New password")
    new_again = forms.CharField(widget=forms.PasswordInput(attrs=NEW_PASSWORD), strip=False,
                                max_length=4096, label="New password again")

    def clean(self) -> dict[str, object]:
        data = super().clean() or {}
        if data.get("new") != data.get("new_again"):
            self.add_error("new_again", "The two passwords differ.")
        return data


class AuditFilterForm(forms.Form):
    actor = forms.CharField(max_length=254, required=False)
    domain = forms.CharField(max_length=253, required=False)
    # The page's <datalist id="audit-actions"> offers the known actions.
    action = forms.CharField(
        max_length=65, required=False,
        validators=[RegexValidator(r"^[a-z_]*(\.[a-z_]*)?\*?$",
                                   "An action is like mailbox.create, or mailbox.* for a family.",
                                   flags=re.IGNORECASE)],
        widget=forms.TextInput(attrs={"list": "audit-actions", "autocomplete": "off",
                                      "spellcheck": "false", "placeholder": "e.g. mailbox.*"}))
    since = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))
    until = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))


# Two-factor sign-in. A code: six digits from the app, or a recovery code.
ONE_TIME_CODE = {"autocomplete": "one-time-code", "autocapitalize": "off",
                 "spellcheck": "false", "inputmode": "text"}


class CodeForm(forms.Form):
    code = forms.CharField(label="Code from your authenticator app, or a recovery code",
                           max_length=64, strip=True,
                           widget=forms.TextInput(attrs={**ONE_TIME_CODE, "autofocus": True}))


class EnrolForm(forms.Form):
    code = forms.CharField(label="The six-digit code the app shows now", max_length=64,
                           strip=True, widget=forms.TextInput(attrs={**ONE_TIME_CODE,
                                                                     "inputmode": "numeric"}))


class OwnEnrolForm(EnrolForm):
    """Set-up in a signed-in session: the password first, so a session alone (a stolen
    cookie) cannot put someone else's authenticator on the account."""

    password = forms.CharField(label="Your password", max_length=4096, strip=False,
                               widget=forms.PasswordInput(attrs=CURRENT_PASSWORD))
    field_order = ["password", "code"]


class DisableTwoFactorForm(forms.Form):
    password = forms.CharField(label="Your password", max_length=4096, strip=False,
                               widget=forms.PasswordInput(attrs=CURRENT_PASSWORD))
    code = forms.CharField(label="Code from your authenticator app, or a recovery code",
                           max_length=64, strip=True, widget=forms.TextInput(attrs=ONE_TIME_CODE))


class KeyNameForm(forms.Form):
    name = forms.CharField(label="A name for the key (to tell it from others)", max_length=64,
                           strip=True, widget=forms.TextInput(attrs={"autocomplete": "off"}))
    password = forms.CharField(label="Your password", max_length=4096, strip=False,
                               widget=forms.PasswordInput(attrs=CURRENT_PASSWORD))

    def __init__(self, *args: Any, ask_password: bool = True, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if not ask_password:  # at sign-in: the password was typed a moment ago
            del self.fields["password"]

    def clean_name(self) -> str:
        name: str = self.cleaned_data["name"]
        if not name.isprintable():
            raise forms.ValidationError("Letters, digits, spaces and punctuation only.")
        return name


class RemoveKeyForm(forms.Form):
    password = forms.CharField(label="Your password", max_length=4096, strip=False,
                               widget=forms.PasswordInput(attrs=CURRENT_PASSWORD))


class RequireForDomainForm(forms.Form):
    # "add": the name the domain picker's suggestions endpoint reads.
    add = forms.CharField(label="Domain whose admins must use it", max_length=253,
                          widget=forms.TextInput(attrs=DOMAIN_PICKER))

    def __init__(self, *args: Any, suggest_url: str = "", **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if suggest_url:
            self.fields["add"].widget.attrs["hx-get"] = suggest_url

    def clean_add(self) -> Domain:
        return selectors.domain_by_name(self.cleaned_data["add"])
