"""Refusals that name what they concern.

A service checks its keyword arguments one by one; a refusal raised under
`on_field("quota")` becomes ValidationError({"quota": [...]}) with its codes
kept, so a form shows it on its quota field (core.http.show_errors) and a
command prints it as one line as before. `FieldErrors` runs several such
checks and raises them all at once, so one submit shows every problem.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from django.core.exceptions import ValidationError


def _as_list(error: ValidationError) -> list[ValidationError]:
    if hasattr(error, "error_dict"):
        return [e for errors in error.error_dict.values() for e in errors]
    return list(error.error_list)


@contextmanager
def on_field(field: str) -> Iterator[None]:
    """Re-raise a refusal from the block as one about `field` (a dict refusal stays as it is)."""
    try:
        yield
    except ValidationError as error:
        if hasattr(error, "error_dict"):
            raise
        raise ValidationError({field: _as_list(error)}) from None


class FieldErrors:
    """Collects refusals by field; `raise_any` raises them together."""

    def __init__(self) -> None:
        self.errors: dict[str, list[ValidationError]] = {}

    @contextmanager
    def on(self, field: str) -> Iterator[None]:
        try:
            yield
        except ValidationError as error:
            if hasattr(error, "error_dict"):
                for name, errors in error.error_dict.items():
                    self.errors.setdefault(name, []).extend(errors)
            else:
                self.errors.setdefault(field, []).extend(_as_list(error))

    def raise_any(self) -> None:
        if self.errors:
            raise ValidationError(dict(self.errors))


def codes(error: ValidationError) -> set[str | None]:
    """Every code in a refusal, whichever field it names."""
    return {e.code for e in _as_list(error)}
