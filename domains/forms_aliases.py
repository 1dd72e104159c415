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


CATCHALL_WARNING = (
    "A catch-all receives every misspelt address and every name a spammer invents; a "
    "catch-all that forwards elsewhere passes that spam on, and bounces from the far end "
    "go back to forged senders (backscatter). Prefer aliases for the names you use.")


class AliasForm(forms.Form):
    """One address of the domain, or its catch-all: an explicit choice, never an empty field.

    The catch-all is stored as the alias `@domain`, as before.
    """

    kind = forms.ChoiceField(
        widget=forms.RadioSelect, required=False, initial="address", label="Receives for",
        help_text=CATCHALL_WARNING)
    local_part = forms.CharField(max_length=200, required=False, label="Address",
                                 help_text="the part before the @")
    destinations = DestinationsField()

    def __init__(self, *args: object, domain_name: str = "", **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.fields["kind"].choices = [  # type: ignore[attr-defined]
            ("address", "One address (below)"),
            ("catchall", f"Catch-all: every address at {domain_name} without its own "
                         "mailbox or alias"),
        ]

    def clean(self) -> dict[str, object]:
        data = super().clean() or {}
        # A post without the choice (an older form, the command line's habits) is one address.
        data["kind"] = data.get("kind") or "address"
        if data["kind"] == "address" and not str(data.get("local_part") or "").strip() \
                and "local_part" not in self.errors:
            self.add_error("local_part", "Give the part before the @, or choose the catch-all.")
        return data

    @property
    def is_catchall(self) -> bool:
        return self.cleaned_data.get("kind") == "catchall"


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
