"""The app-password forms: they shape input; the services decide."""

from __future__ import annotations

from django import forms

from apppasswords.services import NAME_MAX

PROTOCOL_CHOICES = [("imap", "IMAP (reading mail)"), ("smtp", "SMTP (sending mail)"),
                    ("sieve", "Sieve (filter rules)")]


class AppPasswordForm(forms.Form):
    name = forms.CharField(max_length=NAME_MAX, label="Name",
                           help_text="The program or device it is for, e.g. \"Phone\".")
    protocols = forms.MultipleChoiceField(
        choices=PROTOCOL_CHOICES, widget=forms.CheckboxSelectMultiple, initial=["imap", "smtp"],
        label="Allowed for")


class RequiredForm(forms.Form):
    required = forms.BooleanField(required=False)
