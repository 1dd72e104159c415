"""Forms for the alias and alias-domain pages. They only shape input; the services decide."""

from __future__ import annotations

import re

from django import forms

# Addresses never contain a comma, semicolon or white space, so any of them separates two.
_SEPARATORS = re.compile(r"[\s,;]+")
DESTINATIONS_HELP = ("one address per line or comma-separated; mailboxes and aliases of this "
                     "server or addresses elsewhere")


class DestinationsField(forms.CharField):
    """A textarea of addresses; cleans to the list of them, in order, as typed."""

    def __init__(self, **kwargs: object) -> None:
        kwargs.setdefault("widget", forms.Textarea(attrs={"rows": 4, "cols": 40}))
        kwargs.setdefault("max_length", 30_000)
        kwargs.setdefault("label", "Delivers to")
        kwargs.setdefault("help_text", DESTINATIONS_HELP)
        super().__init__(**kwargs)  # type: ignore[arg-type]

    def clean(self, value: object) -> list[str]:  # type: ignore[override]
        text = super().clean(value)
        return [item for item in _SEPARATORS.split(text) if item]


class AliasForm(forms.Form):
    local_part = forms.CharField(
        max_length=200, required=False, label="Address",
        help_text="the part before the @; leave empty for the catch-all, which receives "
                  "mail for every address of the domain that is neither a mailbox nor an alias")
    destinations = DestinationsField()


class AliasEditForm(forms.Form):
    destinations = DestinationsField()
    active = forms.BooleanField(required=False, label="Active (delivers mail)")


class AliasDomainForm(forms.Form):
    name = forms.CharField(
        max_length=1000, label="Alias domain name",
        help_text="mail to any address at this name goes to the same address in this domain; "
                  "international names are stored as punycode")


class AliasDomainEditForm(forms.Form):
    active = forms.BooleanField(required=False, label="Active (receives mail for this domain)")
