"""Who may send as which address, and which way mail from that address goes out.

A user may send as their personal domain mailbox, as any corporate domain mailbox, as a
gateway that is theirs (`personal_for`) and as any corporate gateway. Mail from a domain
mailbox goes out through `[relay]`; mail from a gateway through that gateway's external
SMTP server with its SMTP credentials. Pure: built from the configuration, no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from .config.model import Config
from .mail.addresses import mailbox_login
from .mail.headers import parse_addresses

RELAY_ROUTE = "relay"


@dataclass(frozen=True, slots=True)
class Sender:
    """An address mail may be sent as, and what it belongs to."""

    address: str  # lower case
    scope: str  # "mailbox:<login>" or "gateway:<email>": the routing scope (and task) it belongs to
    route: str  # "relay", or "gateway:<email>"
    owner: str | None  # the user it is personal to; None: corporate
    mailbox_login: str | None = None  # for domain mailboxes: the login (reply addresses are login+token@domain)
    users: tuple[str, ...] = ()  # corporate: the users who may send as it (empty: every user of its organisation)
    # why mail from it to the outside cannot be carried ([relay] missing, the gateway's server
    # has no SMTP endpoint); None: it can
    no_route: str | None = None
    org: int = 1  # the organisation it belongs to: only its users may send as it

    def allowed_for(self, login: str, org: int | None) -> bool:
        """Whether `login`, a user of organisation `org`, may send as this address."""
        if org != self.org:
            return False
        if self.owner is not None:
            return self.owner == login
        return not self.users or login in self.users


@dataclass(frozen=True, slots=True)
class Submission:
    """A message a mail client (or the command line) hands in for sending."""

    raw: bytes
    mail_from: str  # envelope sender: one of the Sender addresses
    recipients: tuple[str, ...]
    user: str  # the authenticated login, or "" for the command line
    peer: str = ""
    task_id: int | None = None  # sent from this task (`task send`); else found from the message


@dataclass(frozen=True, slots=True)
class SendingPolicy:
    domain: str
    senders: Mapping[str, Sender]  # by lower-case address
    local_mailboxes: frozenset[str]  # logins of the domain's mailboxes (login@domain on an own domain)
    own_domains: frozenset[str] = frozenset()  # organisations' own domains

    @classmethod
    def of(cls, config: Config, org: int = 1, relay: bool | None = None) -> SendingPolicy:
        """One organisation's addresses (`relay`: whether [relay] is set, when `config` is an
        organisation's settings read without the file's other sections)."""
        domain = config.daemon.domain
        has_relay = config.relay is not None if relay is None else relay
        senders: dict[str, Sender] = {}
        for mailbox in config.mailboxes:
            address = mailbox.address(domain).lower()
            senders[address] = Sender(address, f"mailbox:{mailbox.login}", RELAY_ROUTE, mailbox.owner, mailbox.login,
                                      mailbox.users, no_route=None if has_relay else "no [relay] is configured",
                                      org=org)
        for gateway in config.gateways:
            address = gateway.email.lower()
            server = config.server(gateway.server)
            no_route = None if server is not None and server.smtp is not None else \
                f'the gateway\'s server "{gateway.server}" has no SMTP endpoint'
            senders[address] = Sender(address, f"gateway:{gateway.email}", f"gateway:{gateway.email}",
                                      gateway.personal_for, users=gateway.users, no_route=no_route, org=org)
        return cls(domain, senders, frozenset(m.login for m in config.mailboxes))

    @classmethod
    def merged(cls, policies: list[SendingPolicy]) -> SendingPolicy:
        """Every organisation's addresses in one policy (their addresses never overlap)."""
        first = policies[0]
        return cls(first.domain, {a: s for p in policies for a, s in p.senders.items()},
                   frozenset(login for p in policies for login in p.local_mailboxes),
                   frozenset(domain for p in policies for domain in p.own_domains))

    def sender(self, address: str) -> Sender | None:
        """The Sender for an address; a domain mailbox's `login+tag@domain` counts as the mailbox."""
        address = address.strip().lower()
        found = self.senders.get(address)
        if found is None:
            local, at, host = address.rpartition("@")
            if at and (host == self.domain or host in self.own_domains) and "+" in local:
                found = self.senders.get(f"{local.split('+', 1)[0]}@{host}")
        return found

    def may_send_as(self, login: str, address: str, org: int | None) -> Sender | None:
        """The Sender when `login` (a user of organisation `org`) may send as `address`."""
        sender = self.sender(address)
        return sender if sender is not None and sender.allowed_for(login, org) else None

    def addresses_for(self, login: str, org: int | None) -> list[str]:
        return sorted(a for a, s in self.senders.items() if s.allowed_for(login, org))

    def local_login(self, address: str) -> str | None:
        """The domain mailbox an address is delivered to here, or None for the outside world."""
        local, at, host = address.strip().lower().rpartition("@")
        if not at or (host != self.domain and host not in self.own_domains):
            return None
        login = mailbox_login(local, host, self.domain)
        return login if login in self.local_mailboxes else None

    def is_ours(self, host: str) -> bool:
        """The shared domain or an organisation's own: mail there is for a mailbox here."""
        host = host.lower().rstrip(".")
        return host == self.domain or host in self.own_domains


def header_addresses(values: list[str]) -> list[str]:
    """The addresses in raw From-like header values (from their syntax, never a display name)."""
    return [address for _, address in parse_addresses(values)]
