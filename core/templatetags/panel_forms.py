"""One form field as the panel shows it: its input linked to its help text,
its errors and any live message under it, focus on the form's first problem."""

from __future__ import annotations

import re
from typing import Any

from django import template
from django.forms import BaseForm, BoundField
from django.utils.safestring import SafeString, mark_safe

register = template.Library()

_FIRST_INPUT = re.compile(r"<input\b")


def first_invalid(form: BaseForm) -> str | None:
    """The name of the first field, in page order, that has an error."""
    return next((name for name in form.fields if form.has_error(name)), None)


def live_ids(form: BaseForm) -> dict[str, str]:
    """Fields with a live (htmx) message element under them: field name -> element id.

    A form sets `live_messages` for them; the element sits right under the input.
    """
    return dict(getattr(form, "live_messages", {}))


@register.simple_tag
def invalid_field_count(form: BaseForm) -> int:
    return sum(1 for name in form.fields if form.has_error(name))


@register.inclusion_tag("_field.html")
def form_field(field: BoundField) -> dict[str, Any]:
    form = field.form
    error_id = f"{field.auto_id}_error"
    help_id = f"{field.auto_id}_helptext"
    live_id = live_ids(form).get(field.name, "")
    described = [help_id] if field.help_text else []
    if field.errors:
        described.append(error_id)
    if live_id:
        described.append(live_id)
    fieldset = field.field.widget.use_fieldset
    attrs: dict[str, Any] = {}
    if described and not fieldset:
        attrs["aria-describedby"] = " ".join(described)
    focus = bool(field.errors) and field.name == first_invalid(form)
    if focus and not fieldset:
        # Only the first: the browser moves focus there as the page loads, no script needed.
        attrs["autofocus"] = True
    widget: SafeString = field.as_widget(attrs=attrs)
    if focus and fieldset:
        # A group of inputs (radios) would give each the attribute: its first option only.
        # Safe: Django's escaped markup with a constant attribute added to one tag.
        widget = mark_safe(_FIRST_INPUT.sub("<input autofocus", widget, count=1))  # noqa: S308
    return {"field": field, "widget": widget, "error_id": error_id, "help_id": help_id,
            "live_id": live_id, "described": " ".join(described),
            "is_checkbox": field.widget_type == "checkbox",
            "is_fieldset": fieldset}
