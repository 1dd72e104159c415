from __future__ import annotations

import re

from django import forms
from django.core.exceptions import ValidationError
from django.core.validators import RegexValidator

from domains import selectors
from domains.models import Domain

# What the browser's password manager should do with a field: offer to make
# and save a new password, or fill in the saved one.
NEW_PASSWORD = {"autocomplete": "new-password"}


def _domains(text: str) -> list[Domain]:
    """The domains named in a comma- or line-separated list; every unknown name at once."""
    names = [n.strip() for n in text.replace("\n", ",").split(",") if n.strip()]
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
    domains = forms.CharField(max_length=20_000, required=False, widget=forms.Textarea(
        attrs={"rows": 3}), help_text="domains this admin manages, comma-separated")

    def clean_domains(self) -> list[Domain]:
        return _domains(self.cleaned_data["domains"])

    def clean(self) -> dict[str, object]:
        data = super().clean() or {}
        if data.get("password") != data.get("password_again"):
            self.add_error("password_again", "The two passwords differ.")
        return data


class AdminDomainsForm(forms.Form):
    domains = forms.CharField(max_length=20_000, required=False, widget=forms.Textarea(
        attrs={"rows": 3}), help_text="comma-separated; at least one")

    def clean_domains(self) -> list[Domain]:
        return _domains(self.cleaned_data["domains"])


class AdminPasswordForm(forms.Form):
    password = forms.CharField(widget=forms.PasswordInput(attrs=NEW_PASSWORD), strip=False,
                               label="New password")
    password_again = forms.CharField(widget=forms.PasswordInput(attrs=NEW_PASSWORD), strip=False)

    def clean(self) -> dict[str, object]:
        data = super().clean() or {}
        if data.get("password") != data.get("password_again"):
            self.add_error("password_again", "The two passwords differ.")
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
