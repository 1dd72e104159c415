"""The DKIM key form. It shapes what is pasted; services.set_key decides."""

from __future__ import annotations

from django import forms

from dkim import records

# An 8192-bit RSA key in PEM is under 1,500 characters; anything far longer is not a key.
KEY_MAX = 16_000


class DkimKeyForm(forms.Form):
    selector = forms.CharField(
        max_length=records.SELECTOR_MAX,
        help_text="the name before ._domainkey, e.g. mail or 2025a")
    public_key = forms.CharField(
        max_length=KEY_MAX, label="Public key",
        widget=forms.Textarea(attrs={"rows": 8, "spellcheck": "false", "autocomplete": "off"}),
        help_text="a PEM public key, the base64 after p=, a whole v=DKIM1 record, "
                  "or the record rspamadm dkim_keygen prints")

    def clean_selector(self) -> str:
        selector = str(self.cleaned_data["selector"]).strip().lower()
        if not records.valid_selector(selector):
            raise forms.ValidationError(
                "A selector is letters, digits, hyphens and underscores, in labels "
                "separated by dots.")
        return selector

    def clean_public_key(self) -> str:
        text = str(self.cleaned_data["public_key"])
        if records.PRIVATE_KEY_RE.search(text):
            # Not shown again: the page re-rendered with the error must not carry it.
            self.data = {**self.data, "public_key": ""}
            raise forms.ValidationError(
                "That is a private key. Paste only the public key or the TXT record: "
                "the private key stays with the signer.")
        try:
            records.normalise(text)
        except records.BadKey as error:
            raise forms.ValidationError(f"That DKIM key cannot be used: {error}.") from None
        return text


class GenerateForm(forms.Form):
    """A new key: the sizes the policy allows (services.check_size decides)."""

    algorithm = forms.ChoiceField(
        choices=[("rsa", "RSA"), ("ed25519", "ed25519 (beside an RSA key only)")],
        initial="rsa")
    bits = forms.TypedChoiceField(
        choices=[(2048, "2048"), (3072, "3072"), (4096, "4096")], coerce=int, initial=2048,
        label="RSA bits", help_text="ignored for ed25519 (always 256)")


class RotationForm(forms.Form):
    """A domain's rotation interval: days, `off`, or empty for the default."""

    days = forms.CharField(
        required=False, max_length=10, label="Rotate every (days)",
        help_text="at least 14; off: never unattended; empty: the default")

    def clean_days(self) -> int | None:
        text = str(self.cleaned_data["days"]).strip().lower()
        if not text:
            return None
        if text == "off":
            return 0
        if not text.isdigit():
            raise forms.ValidationError("A number of days, off, or empty for the default.")
        return int(text)
