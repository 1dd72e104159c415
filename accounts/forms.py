from __future__ import annotations

import re

from django import forms
from django.core.validators import RegexValidator


class AdminForm(forms.Form):
    username = forms.CharField(max_length=150, label="User name",
                               help_text="usually the person's mail address")
    password = forms.CharField(widget=forms.PasswordInput, strip=False)
    password_again = forms.CharField(widget=forms.PasswordInput, strip=False)
    superadmin = forms.BooleanField(required=False, label="Superadmin (every domain)")
    domains = forms.CharField(max_length=20_000, required=False, widget=forms.Textarea(
        attrs={"rows": 3}), help_text="domains this admin manages, comma-separated")

    def clean(self) -> dict[str, object]:
        data = super().clean() or {}
        if data.get("password") != data.get("password_again"):
            self.add_error("password_again", "The two passwords differ.")
        return data


class AdminDomainsForm(forms.Form):
    domains = forms.CharField(max_length=20_000, required=False, widget=forms.Textarea(
        attrs={"rows": 3}), help_text="comma-separated; at least one")


class AdminPasswordForm(forms.Form):
    password = forms.CharField(widget=forms.PasswordInput, strip=False, label="New password")
    password_again = forms.CharField(widget=forms.PasswordInput, strip=False)

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
