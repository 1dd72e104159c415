"""The auto-reply and forwarding forms (the services check everything again)."""

from __future__ import annotations

from django import forms

from vacation.services import DAYS_MAX, DAYS_MIN, FORWARD_MAX, SUBJECT_MAX, TEXT_MAX


class DateInput(forms.DateInput):
    input_type = "date"


class AutoReplyForm(forms.Form):
    part = forms.CharField(widget=forms.HiddenInput, initial="reply")
    enabled = forms.BooleanField(required=False, label="Send an automatic reply")
    subject = forms.CharField(max_length=SUBJECT_MAX, required=False, strip=False)
    text = forms.CharField(max_length=TEXT_MAX, required=False, strip=False,
                           widget=forms.Textarea(attrs={"rows": 6}))
    start = forms.DateField(required=False, label="First day", widget=DateInput,
                            help_text="Empty: from now on.")
    end = forms.DateField(required=False, label="Last day", widget=DateInput,
                          help_text="Empty: until you switch it off. Days in the mail "
                          "server's time zone, both included.")
    days = forms.IntegerField(min_value=DAYS_MIN, max_value=DAYS_MAX, initial=7,
                              label="Answer each sender once every … days")


class ForwardForm(forms.Form):
    part = forms.CharField(widget=forms.HiddenInput, initial="forward")
    forward_to = forms.CharField(
        required=False, max_length=FORWARD_MAX * 256, label="Forward to",
        help_text=f"Up to {FORWARD_MAX} addresses, separated by commas. Empty: no forwarding.")
    keep = forms.BooleanField(required=False, label="Keep a copy in this mailbox",
                              initial=True)
