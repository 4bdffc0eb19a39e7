"""An organisation's own mail domains (`domain add/remove`, the API's domains): the MX takes
mail for them; each belongs to one organisation, the shared domain to none."""

from __future__ import annotations

from ..config.model import Config
from ..errors import Conflict, Invalid
from ..identifiers import normalise_domain
from ..store.ports import Organisation


def domain_name(text: str, shared_domain: str) -> str:
    """The domain as stored (normalised); Invalid for what is not a mail domain, or the shared one."""
    domain = normalise_domain(text)
    if domain is None:
        raise Invalid(f'"{text}" is not a mail domain', field="domain")
    if domain == shared_domain:
        raise Invalid(f"{domain} is the shared domain (daemon.domain): it belongs to no organisation", field="domain")
    return domain


def check_removable(domain: str, organisation: Organisation, settings: Config) -> None:
    """Conflict while the organisation's settings (`settings`) still have mailboxes on it."""
    on_it = [m.login for m in settings.mailboxes if m.login.endswith(f"@{domain}")]
    if on_it:
        raise Conflict(f"{domain} still has mailboxes ({', '.join(on_it)}): remove them first "
                       f"(prostoy-mail --org {organisation.slug} mailbox remove ...)")
