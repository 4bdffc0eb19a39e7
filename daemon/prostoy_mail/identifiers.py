"""The names of the hosting model, checked in one place: organisation slugs and mail domains."""

from __future__ import annotations

import re

_SLUG = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")
_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")
DEFAULT_SLUG = "main"


def slug_problem(slug: str) -> str | None:
    """Why `slug` is not an organisation's slug, or None: lower-case letters, digits and
    hyphens, 1 to 63 characters, no hyphen first or last."""
    if _SLUG.fullmatch(slug) is None:
        return f'"{slug}" is not a slug: use a-z, 0-9 and "-" (1 to 63 characters, not starting or ending with "-")'
    return None


def normalise_domain(domain: str) -> str | None:
    """A mail domain as the store keeps it (lower case; an internationalised one in its ASCII
    form, as DNS and SMTP carry it), or None when it is not one: at least two labels of
    letters, digits and hyphens, 253 characters at most, no address literal."""
    text = domain.strip().rstrip(".").lower()
    try:
        ascii_form = text.encode("idna").decode("ascii")
    except UnicodeError:
        return None
    labels = ascii_form.split(".")
    if len(ascii_form) > 253 or len(labels) < 2 or labels[-1].isdigit():
        return None
    return ascii_form if all(_LABEL.fullmatch(label) for label in labels) else None
