"""Reading the configuration file: stdlib tomllib, strict.

Every problem is collected, not just the first, and each names the file, the key path
and what is wrong (`prostoy-mail.toml: gateways[2].server: unknown server "yandx.ru"`).
Unknown keys are errors. Array entries are counted from 1, as an admin counts them.
"""

from __future__ import annotations

import functools
import hashlib
import os
import re
import stat
import tomllib
from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar

import orjson

from ..errors import ConfigError, Problem
from ..identifiers import normalise_domain, slug_problem
from .model import (
    ACTION_CHOICES,
    LIMIT_NAMES,
    LISTENER_NAMES,
    PROTOCOL_CHOICES,
    SECURITY_CHOICES,
    ApiSettings,
    AuthSettings,
    Config,
    DaemonSettings,
    Endpoint,
    FetchSettings,
    Gateway,
    ImapSettings,
    LimitSettings,
    Listen,
    Mailbox,
    OrganisationSettings,
    OutboundSettings,
    Relay,
    RoutingSettings,
    Rule,
    Security,
    Server,
    SmtpLimits,
    Tls,
    is_loopback,
)

T = TypeVar("T")

# A mailbox login is the local part of a domain address. '+' is reserved for reply tokens.
LOGIN_RE = re.compile(r"^[a-z0-9](?:[a-z0-9._-]{0,62}[a-z0-9])?$")
_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
DOMAIN_RE = re.compile(rf"^(?=.{{1,253}}$){_LABEL}(?:\.{_LABEL})*$")
EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


class _Problems:
    def __init__(self, file: str) -> None:
        self.file = file
        self.items: list[Problem] = []

    def add(self, key: str, message: str) -> None:
        self.items.append(Problem(self.file, key, message))


def _type_name(value: object) -> str:
    return {
        str: "a string", bool: "true/false", int: "a number", float: "a number",
        list: "an array", dict: "a table", date: "a date",
    }.get(type(value), type(value).__name__)


class _Table:
    """One TOML table read strictly: typed getters record problems, `done()` flags unknown keys."""

    def __init__(self, data: Mapping[str, Any], path: str, problems: _Problems) -> None:
        self.data = data
        self.path = path
        self.problems = problems
        self.seen: set[str] = set()

    def key(self, name: str) -> str:
        return f"{self.path}.{name}" if self.path else name

    def problem(self, name: str, message: str) -> None:
        self.problems.add(self.key(name), message)

    def _get(self, name: str, kind: type | tuple[type, ...], kind_name: str) -> Any:
        self.seen.add(name)
        if name not in self.data:
            return None
        value = self.data[name]
        # bool is an int subclass in Python: never accept true/false where a number is wanted
        if not isinstance(value, kind) or (isinstance(value, bool) and bool not in _as_tuple(kind)):
            self.problem(name, f"must be {kind_name}, not {_type_name(value)}")
            return None
        return value

    def text(self, name: str, default: str | None = None, *, required: bool = False) -> str | None:
        value = self._get(name, str, "a string")
        if value is None:
            if required and name not in self.data:
                self.problem(name, "is required")
            return default
        if required and not value.strip():
            self.problem(name, "must not be empty")
        return str(value)

    def flag(self, name: str, default: bool) -> bool:
        value = self._get(name, bool, "true or false")
        return default if value is None else bool(value)

    def number(self, name: str, default: int, *, minimum: int = 0, maximum: int | None = None) -> int:
        value = self._get(name, int, "a whole number")
        if value is None:
            return default
        if value < minimum:
            self.problem(name, f"must be at least {minimum}, not {value}")
            return default
        if maximum is not None and value > maximum:
            self.problem(name, f"must be at most {maximum}, not {value}")
            return default
        return int(value)

    def seconds(self, name: str, default: float, *, maximum: float | None = None, zero_is_off: bool = False) -> float:
        value = self._get(name, (int, float), "a number of seconds")
        if value is None:
            return default
        if value < 0 or (value == 0 and not zero_is_off) or (maximum is not None and value > maximum):
            low = "from 0" if zero_is_off else "more than 0"
            self.problem(name, f"must be {low}{f' to {maximum:g}' if maximum is not None else ''}, not {value}")
            return default
        return float(value)

    def choice(self, name: str, choices: tuple[T, ...], default: T) -> T:
        value = self.text(name)
        if value is None:
            return default
        for choice in choices:
            if value == choice:
                return choice
        self.problem(name, f'must be one of {", ".join(map(str, choices))}, not "{value}"')
        return default

    def path_value(self, name: str, base: Path) -> Path | None:
        value = self.text(name)
        if value is None or not value:
            return None
        path = Path(value)
        return path if path.is_absolute() else (base / path).resolve()

    def endpoint(self, name: str) -> Endpoint | None:
        """`"host:port"` or `{ host = "...", port = N }`."""
        self.seen.add(name)
        value = self.data.get(name)
        if value is None:
            return None
        if isinstance(value, str):
            return _parse_endpoint(value, self.key(name), self.problems)
        if isinstance(value, dict):
            sub = _Table(value, self.key(name), self.problems)
            host = sub.text("host", required=True)
            port = sub.number("port", 0, minimum=1)
            sub.done()
            if port > 65535:
                sub.problem("port", f"must be at most 65535, not {port}")
            if not host or not port or port > 65535:
                if "port" not in value:
                    sub.problem("port", "is required")
                return None
            return Endpoint(host, port)
        self.problem(name, f'must be "host:port" or a table {{ host, port }}, not {_type_name(value)}')
        return None

    def word_list(self, name: str) -> tuple[str, ...]:
        """A comma-separated string (`"счёт, invoice"`) or an array of strings."""
        self.seen.add(name)
        value = self.data.get(name)
        if value is None:
            return ()
        if isinstance(value, str):
            items: Iterable[str] = value.split(",")
        elif isinstance(value, list) and all(isinstance(v, str) for v in value):
            items = value
        else:
            self.problem(name, f"must be a comma-separated string or an array of strings, not {_type_name(value)}")
            return ()
        return tuple(item.strip() for item in items if item.strip())

    def day(self, name: str) -> date | None:
        self.seen.add(name)
        value = self.data.get(name)
        if value is None:
            return None
        if isinstance(value, date):
            return value
        if isinstance(value, str):
            try:
                return date.fromisoformat(value)
            except ValueError:
                pass
        self.problem(name, f"must be a date like 2026-01-31, not {value!r}")
        return None

    def table(self, name: str) -> _Table | None:
        value = self._get(name, dict, "a table")
        return None if value is None else _Table(value, self.key(name), self.problems)

    def tables(self, name: str) -> list[_Table]:
        self.seen.add(name)
        value = self.data.get(name)
        if value is None:
            return []
        if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
            self.problem(name, f"must be an array of tables ([[{name}]]), not {_type_name(value)}")
            return []
        return [_Table(v, f"{self.key(name)}[{i}]", self.problems) for i, v in enumerate(value, 1)]

    def done(self) -> None:
        for name in self.data:
            if name not in self.seen:
                self.problem(name, "unknown key")


def _as_tuple(kind: type | tuple[type, ...]) -> tuple[type, ...]:
    return kind if isinstance(kind, tuple) else (kind,)


def _parse_endpoint(value: str, key: str, problems: _Problems, *, any_port: bool = False) -> Endpoint | None:
    """`host:port`; with `any_port`, port 0 means any free port (for tests)."""
    host, sep, port_text = value.rpartition(":")
    host = host.strip("[]")
    lowest = 0 if any_port else 1
    if not sep or not host or not port_text.isdigit() or not lowest <= int(port_text) <= 65535:
        problems.add(key, f'must be "host:port" with a port from {lowest} to 65535, not "{value}"')
        return None
    return Endpoint(host, int(port_text))


def _secret(table: _Table, prefix: str, base: Path) -> tuple[str | None, Path | None]:
    """`<prefix>password` given inline or as `<prefix>password_file`, never both."""
    password = table.text(f"{prefix}password")
    password_file = table.path_value(f"{prefix}password_file", base)
    if password is not None and password_file is not None:
        table.problem(f"{prefix}password", f"give either {prefix}password or {prefix}password_file, not both")
    return password, password_file


def read_servers(tables: list[_Table], base: Path | None = None) -> list[Server]:
    servers: list[Server] = []
    for t in tables:
        name = t.text("name", required=True) or ""
        implicit_tls = t.flag("ssl", True)
        default_security: Security = "ssl" if implicit_tls else "starttls"
        fetch_security = t.choice("fetch_security", SECURITY_CHOICES, default_security)
        if "fetch_security" in t.data and "ssl" in t.data and implicit_tls != (fetch_security == "ssl"):
            t.problem("fetch_security", f'"{fetch_security}" contradicts ssl = {str(implicit_tls).lower()}')
        server = Server(
            name=name.lower(),
            imap=t.endpoint("imap"),
            pop3=t.endpoint("pop3"),
            smtp=t.endpoint("smtp"),
            verify_certificate=t.flag("verify_certificate", True),
            ssl=implicit_tls,
            security=t.choice("security", SECURITY_CHOICES, "none"),
            files_sent_mail=t.flag("files_sent_mail", False),
            fetch_security=fetch_security,
            ca_file=t.path_value("ca_file", base) if base is not None else None,
        )
        t.done()
        if name and not (server.imap or server.pop3 or server.smtp):
            t.problem("name", f'server "{name}" needs at least one of imap, pop3, smtp')
        if any(s.name == server.name for s in servers):
            t.problem("name", f'server "{name}" is defined twice')
        servers.append(server)
    return servers


@functools.cache
def load_presets() -> tuple[Server, ...]:
    """The packaged presets (read once: every organisation's settings are parsed with them)."""
    text = resources.files("prostoy_mail.config").joinpath("presets.toml").read_text("utf-8")
    problems = _Problems("presets.toml")
    top = _Table(tomllib.loads(text), "", problems)
    servers = read_servers(top.tables("servers"))
    top.done()
    if problems.items:  # a broken package, not an admin's mistake
        raise ConfigError(problems.items)
    return tuple(Server(**{**_fields(s), "preset": True}) for s in servers)


def _fields(server: Server) -> dict[str, Any]:
    return {name: getattr(server, name) for name in Server.__dataclass_fields__}


def parse_config(text: str, path: Path, display_name: str | None = None) -> Config:
    """Parse and validate config text; raise ConfigError listing every problem."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([Problem(display_name or path.name, "", f"not valid TOML: {exc}")]) from None
    return config_from_data(data, path, display_name, hashlib.sha256(text.encode("utf-8")).hexdigest())


def config_from_data(data: Mapping[str, Any], path: Path, display_name: str | None = None,
                     text_sha256: str = "") -> Config:
    """Validate settings as TOML would give them (an organisation in the store keeps its
    entries so: config/organisation.py); raise ConfigError listing every problem."""
    problems = _Problems(display_name or path.name)
    base = path.parent
    top = _Table(data, "", problems)

    daemon = _read_daemon(top.table("daemon"))
    organisation = _read_organisation(top.table("organisation"))
    listen = _read_listen(top.table("listen"), problems)
    tls = _read_tls(top.table("tls"), base)
    smtp = _read_smtp_limits(top.table("smtp"))
    fetch = _read_fetch(top.table("fetch"))
    auth = _read_auth(top.table("auth"))
    api = _read_api(top.table("api"), base)
    imap = _read_imap(top.table("imap"))
    outbound = _read_outbound(top.table("outbound"))
    routing = _read_routing(top.table("routing"))
    limits = _read_limits(top.table("limits"))
    relay = _read_relay(top.table("relay"), base)
    own_servers = read_servers(top.tables("servers"), base)
    mailboxes = _read_mailboxes(top.tables("mailboxes"), daemon.domain)
    own_names = {s.name for s in own_servers}
    servers = tuple(s for s in load_presets() if s.name not in own_names) + tuple(own_servers)
    gateways = _read_gateways(top.tables("gateways"), servers, base)
    rules = _read_rules(top.tables("rules"), mailboxes, gateways)
    top.done()

    # (SMTP takes mail in clear too; the API may be plain on loopback, where only this machine reaches it)
    needing = [n for n, e in listen.items() if n != "smtp" and not (n == "http" and is_loopback(e.host))]
    if needing and not (tls.cert and tls.key):
        problems.add("tls", f"{', '.join(f'listen.{n}' for n in needing)} need [tls] cert and key")
    if problems.items:
        raise ConfigError(problems.items)
    return Config(
        path=path, daemon=daemon, organisation=organisation, listen=listen, tls=tls, smtp=smtp, fetch=fetch,
        auth=auth, api=api, imap=imap, outbound=outbound,
        routing=routing, limits=limits, relay=relay, servers=servers,
        mailboxes=tuple(mailboxes), gateways=tuple(gateways), rules=tuple(rules),
        text_sha256=text_sha256,
    )


def load_config(path: Path) -> Config:
    try:
        text = path.read_text("utf-8")
    except FileNotFoundError:
        raise ConfigError([Problem(str(path), "", "no such file (create one with: prostoy-mail init)")]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([Problem(str(path), "", f"cannot read: {exc}")]) from None
    return parse_config(text, path.absolute(), str(path))


def file_digest(path: Path) -> str:
    """SHA-256 of a file's bytes; "" when it cannot be read."""
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return ""


CERTIFICATE_WARNING_DAYS = 14  # a certificate expiring sooner is warned about


def config_warnings(path: Path, config: Config) -> list[str]:
    """Things that work but should not be so: secrets others can read (every command says so)."""
    warnings: list[str] = []
    inline = [f"gateways[{i}]" for i, g in enumerate(config.gateways, 1) if g.password or g.smtp_password]
    if config.relay and config.relay.password:
        inline.append("relay")
    try:
        mode = path.stat().st_mode
    except OSError:
        mode = 0
    if inline and mode & (stat.S_IRGRP | stat.S_IROTH):
        warnings.append(
            f"{path}: holds passwords ({', '.join(inline)}) but is readable by group/others "
            f"(mode {stat.S_IMODE(mode):o}); run: chmod 600 {path}, or use password_file"
        )
    secrets = [("tls.key", config.tls.key)]
    secrets += [(f"gateways[{i}].{key}", getattr(g, key)) for i, g in enumerate(config.gateways, 1)
                for key in ("password_file", "smtp_password_file")]
    if config.relay is not None:
        secrets.append(("relay.password_file", config.relay.password_file))
    for key, secret in secrets:
        try:
            secret_mode = secret.stat().st_mode if secret is not None else 0
        except OSError:
            continue
        if secret_mode & stat.S_IROTH:
            warnings.append(f"{path}: {key}: {secret} is readable by others (mode {stat.S_IMODE(secret_mode):o}); "
                            f"run: chmod o-r {secret}")
    return warnings


def service_warnings(path: Path, config: Config) -> list[str]:
    """What `check` and `serve` also say: a certificate expired or about to, and mail from the
    domain's mailboxes or gateways that nothing can carry out."""
    warnings: list[str] = []
    if config.tls.cert is not None:
        warnings.extend(_certificate_warnings(path, config.tls.cert))
    if config.relay is None and config.mailboxes:
        logins = ", ".join(m.login for m in config.mailboxes)
        warnings.append(f"{path}: relay: not set, so the domain's mailboxes ({logins}) cannot send mail outside "
                        "the domain (a mail client gets 550 5.7.1 for such a recipient)")
    for gateway in config.gateways:
        server = config.server(gateway.server)
        if server is not None and server.smtp is None:
            warnings.append(f"{path}: gateways: {gateway.email} cannot send mail: its server "
                            f'"{gateway.server}" has no smtp endpoint')
    return warnings


def _certificate_warnings(path: Path, cert: Path) -> list[str]:
    from cryptography import x509  # (only when there is a certificate to look at)

    try:
        certificate = x509.load_pem_x509_certificate(cert.read_bytes())
    except (OSError, ValueError):
        return []  # (a missing or broken file is an error where it is loaded, with its reason)
    expires = certificate.not_valid_after_utc
    left = expires - datetime.now(UTC)
    if left.total_seconds() <= 0:
        return [f"{path}: tls.cert: {cert} expired on {expires:%Y-%m-%d}: mail clients and senders will refuse it"]
    if left.days < CERTIFICATE_WARNING_DAYS:
        return [f"{path}: tls.cert: {cert} expires on {expires:%Y-%m-%d} (in {left.days} days): renew it"]
    return []


def default_config_path() -> Path:
    return Path(os.environ.get("PROSTOY_MAIL_CONFIG") or "/etc/prostoy-mail/prostoy-mail.toml")


# --- sections -----------------------------------------------------------------------------


def _read_daemon(t: _Table | None) -> DaemonSettings:
    if t is None:
        return DaemonSettings()
    defaults = DaemonSettings()
    domain = (t.text("domain", defaults.domain) or "").lower()
    if not DOMAIN_RE.match(domain) or "." not in domain:
        t.problem("domain", f'"{domain}" is not a domain name')
    hostname = (t.text("hostname", defaults.hostname) or "").lower()
    if not DOMAIN_RE.match(hostname):
        t.problem("hostname", f'"{hostname}" is not a host name')
    store = t.text("store", defaults.store) or ""
    if not store.strip():
        t.problem("store", "must not be empty")
    mail_project = t.text("mail_project", defaults.mail_project) or defaults.mail_project
    if "/" in mail_project:
        t.problem("mail_project", 'must not contain "/"')
    t.done()
    return DaemonSettings(domain=domain, store=store, hostname=hostname, mail_project=mail_project)


def _read_organisation(t: _Table | None) -> OrganisationSettings:
    if t is None:
        return OrganisationSettings()
    defaults = OrganisationSettings()
    slug = t.text("slug", defaults.slug) or ""
    problem = slug_problem(slug)
    if problem is not None:
        t.problem("slug", problem)
    settings = OrganisationSettings(slug=slug, name=(t.text("name", "") or "").strip())
    t.done()
    return settings


def _read_listen(t: _Table | None, problems: _Problems) -> Listen:
    if t is None:
        return Listen()
    endpoints: dict[str, Endpoint | None] = {}
    for name in (*LISTENER_NAMES, "metrics"):
        value = t.text(name)
        endpoints[name] = None if value is None else _parse_endpoint(value, t.key(name), problems, any_port=True)
    t.done()
    seen: dict[Endpoint, str] = {}
    for name, endpoint in endpoints.items():
        if endpoint is None:
            continue
        if endpoint in seen and endpoint.port:
            problems.add(f"listen.{name}", f"{endpoint} is already used by listen.{seen[endpoint]}")
        seen[endpoint] = name
    return Listen(**endpoints)


def _read_tls(t: _Table | None, base: Path) -> Tls:
    if t is None:
        return Tls()
    tls = Tls(cert=t.path_value("cert", base), key=t.path_value("key", base))
    t.done()
    if (tls.cert is None) != (tls.key is None):
        t.problem("cert" if tls.cert is None else "key", "cert and key go together")
    return tls


def _read_smtp_limits(t: _Table | None) -> SmtpLimits:
    if t is None:
        return SmtpLimits()
    d = SmtpLimits()
    limits = SmtpLimits(
        # (the maxima refuse absurd values: a typo of 10^15 bytes is no limit at all)
        max_message_size=t.number("max_message_size", d.max_message_size, minimum=1024, maximum=1 << 30),
        max_recipients=t.number("max_recipients", d.max_recipients, minimum=1, maximum=100_000),
        max_line_length=t.number("max_line_length", d.max_line_length, minimum=1001, maximum=1 << 20),
        max_connections_per_ip=t.number("max_connections_per_ip", d.max_connections_per_ip, minimum=1,
                                        maximum=1_000_000),
        max_connections=t.number("max_connections", d.max_connections, minimum=1, maximum=1_000_000),
        session_timeout=t.seconds("session_timeout", d.session_timeout, maximum=86400),
        idle_timeout=t.seconds("idle_timeout", d.idle_timeout, maximum=86400),
        max_errors=t.number("max_errors", d.max_errors, minimum=1, maximum=1000),
        error_delay=t.seconds("error_delay", d.error_delay, maximum=30, zero_is_off=True),
        duplicate_window=t.seconds("duplicate_window", d.duplicate_window, maximum=30 * 86400, zero_is_off=True),
        greeting_delay=t.seconds("greeting_delay", d.greeting_delay, maximum=30, zero_is_off=True),
        workers=t.number("workers", d.workers),
    )
    if limits.workers > 64:
        t.problem("workers", f"must be at most 64, not {limits.workers}")
    t.done()
    return limits


def _read_fetch(t: _Table | None) -> FetchSettings:
    if t is None:
        return FetchSettings()
    d = FetchSettings()
    settings = FetchSettings(
        idle_renew=t.seconds("idle_renew", d.idle_renew),
        poll_interval=t.seconds("poll_interval", d.poll_interval),
        backoff_initial=t.seconds("backoff_initial", d.backoff_initial),
        backoff_max=t.seconds("backoff_max", d.backoff_max),
        max_attempts=t.number("max_attempts", d.max_attempts, minimum=1),
        timeout=t.seconds("timeout", d.timeout),
        private_servers=t.flag("private_servers", d.private_servers),
    )
    t.done()
    if settings.idle_renew > 1740:
        t.problem("idle_renew", "must be at most 1740 seconds (29 minutes, RFC 2177)")
    return settings


def _read_api(t: _Table | None, base: Path) -> ApiSettings:
    if t is None:
        return ApiSettings()
    d = ApiSettings()
    settings = ApiSettings(admin_token_file=t.path_value("admin_token_file", base),
                           session_lifetime=t.seconds("session_lifetime", d.session_lifetime, maximum=90 * 86400),
                           webhook_failing_after=t.seconds("webhook_failing_after", d.webhook_failing_after,
                                                           maximum=30 * 86400),
                           webhook_retry_initial=t.seconds("webhook_retry_initial", d.webhook_retry_initial),
                           webhook_retry_max=t.seconds("webhook_retry_max", d.webhook_retry_max),
                           event_retention=t.seconds("event_retention", d.event_retention, maximum=3650 * 86400))
    t.done()
    return settings


def _read_imap(t: _Table | None) -> ImapSettings:
    if t is None:
        return ImapSettings()
    d = ImapSettings()
    settings = ImapSettings(max_connections=t.number("max_connections", d.max_connections, minimum=1,
                                                     maximum=1_000_000),
                            max_connections_per_ip=t.number("max_connections_per_ip", d.max_connections_per_ip,
                                                            minimum=1, maximum=1_000_000))
    t.done()
    return settings


def _read_auth(t: _Table | None) -> AuthSettings:
    if t is None:
        return AuthSettings()
    d = AuthSettings()
    settings = AuthSettings(
        delay_after=t.number("delay_after", d.delay_after, minimum=1),
        max_delay=t.seconds("max_delay", d.max_delay),
        max_failures=t.number("max_failures", d.max_failures, minimum=1),
        failure_window=t.seconds("failure_window", d.failure_window),
        block_time=t.seconds("block_time", d.block_time),
        max_parallel_checks=t.number("max_parallel_checks", d.max_parallel_checks, minimum=1),
        verified_cache_seconds=t.seconds("verified_cache_seconds", d.verified_cache_seconds, maximum=86400,
                                         zero_is_off=True),
    )
    t.done()
    return settings


def _read_outbound(t: _Table | None) -> OutboundSettings:
    if t is None:
        return OutboundSettings()
    d = OutboundSettings()
    settings = OutboundSettings(
        retry_initial=t.seconds("retry_initial", d.retry_initial),
        retry_max=t.seconds("retry_max", d.retry_max),
        max_queue_time=t.seconds("max_queue_time", d.max_queue_time),
        timeout=t.seconds("timeout", d.timeout),
        poll_interval=t.seconds("poll_interval", d.poll_interval),
    )
    t.done()
    return settings


def _read_routing(t: _Table | None) -> RoutingSettings:
    if t is None:
        return RoutingSettings()
    d = RoutingSettings()
    settings = RoutingSettings(
        new_tasks_per_sender_per_hour=t.number("new_tasks_per_sender_per_hour", d.new_tasks_per_sender_per_hour,
                                               minimum=1, maximum=100_000),
    )
    t.done()
    return settings


def _read_limits(t: _Table | None) -> LimitSettings:
    if t is None:
        return LimitSettings()
    d = LimitSettings()
    settings = LimitSettings(**{name: t.number(name, getattr(d, name), minimum=0, maximum=10_000_000)
                                for name in LIMIT_NAMES})
    t.done()
    return settings


def _read_relay(t: _Table | None, base: Path) -> Relay | None:
    if t is None:
        return None
    host = t.text("host", required=True) or ""
    port = t.number("port", 587, minimum=1)
    password, password_file = _secret(t, "", base)
    relay = Relay(
        host=host, port=port, security=t.choice("security", SECURITY_CHOICES, "starttls"),
        login=t.text("login"), password=password, password_file=password_file,
        verify_certificate=t.flag("verify_certificate", True), ca_file=t.path_value("ca_file", base),
    )
    t.done()
    return relay


def _read_mailboxes(tables: list[_Table], shared_domain: str) -> list[Mailbox]:
    """A mailbox of the shared domain is its login alone (`sales`); one of the organisation's own
    domains is the whole address (`sales@acme.example`; the domain must be the organisation's:
    provisioning.ownership_conflicts)."""
    mailboxes: list[Mailbox] = []
    for t in tables:
        login = t.text("login", required=True) or ""
        local, at, domain = login.partition("@")
        if at and normalise_domain(domain) == shared_domain.lower():
            t.problem("login", f'"{login}" is on the shared domain: write the login alone ("{local}")')
        elif at and (not LOGIN_RE.match(local) or normalise_domain(domain) != domain):
            t.problem("login", f'"{login}" is not a valid mailbox address on an own domain '
                               "(login@domain, in lower case: letters, digits, '.', '_', '-')")
        elif login and not at and not LOGIN_RE.match(login):
            t.problem("login", f'"{login}" is not a valid mailbox login '
                               "(lower-case letters, digits, '.', '_', '-'; or login@own-domain)")
        if any(m.login == login for m in mailboxes):
            t.problem("login", f'mailbox "{login}" is defined twice')
        mailbox = Mailbox(login=login, owner=t.text("owner"), users=t.word_list("users"))
        if mailbox.owner and mailbox.users:
            t.problem("users", "a personal mailbox (with owner) is its owner's alone; users is for corporate ones")
        mailboxes.append(mailbox)
        t.done()
    return mailboxes


def _read_gateways(tables: list[_Table], servers: tuple[Server, ...], base: Path) -> list[Gateway]:
    gateways: list[Gateway] = []
    known = ", ".join(s.name for s in servers)
    for t in tables:
        email = (t.text("email", required=True) or "").lower()
        if email and not EMAIL_RE.match(email):
            t.problem("email", f'"{email}" is not an e-mail address')
        if any(g.email == email for g in gateways):
            t.problem("email", f'gateway "{email}" is defined twice')
        server_name = (t.text("server", required=True) or "").lower()
        server = next((s for s in servers if s.name == server_name), None)
        if server_name and server is None:
            t.problem("server", f'unknown server "{server_name}" (known: {known})')
        protocol = t.choice("protocol", PROTOCOL_CHOICES, "imap")
        password, password_file = _secret(t, "", base)
        smtp_password, smtp_password_file = _secret(t, "smtp_", base)
        gateway = Gateway(
            email=email, server=server_name, protocol=protocol,
            login=t.text("login") or email, password=password, password_file=password_file,
            smtp_login=t.text("smtp_login"), smtp_password=smtp_password,
            smtp_password_file=smtp_password_file, personal_for=t.text("personal_for"), users=t.word_list("users"),
            forwarding=t.flag("forwarding", True), keep_on_server=t.flag("keep_on_server", True),
            upload_sent=t.flag("upload_sent", False), mark_read=t.flag("mark_read", False),
            delete_on_server_when_deleted=t.flag("delete_on_server_when_deleted", False),
            import_since=t.day("import_since"),
        )
        t.done()
        if password is None and password_file is None:
            t.problem("password", "give password or password_file")
        if gateway.smtp_login is not None and smtp_password is None and smtp_password_file is None:
            t.problem("smtp_login", "a separate SMTP login needs smtp_password or smtp_password_file")
        if gateway.smtp_login is None and (smtp_password is not None or smtp_password_file is not None):
            t.problem("smtp_login", "an SMTP password without smtp_login")
        if server is not None and gateway.forwarding and getattr(server, protocol) is None:
            t.problem("protocol", f'server "{server.name}" has no {protocol} endpoint')
        if server is not None and gateway.upload_sent and server.imap is None:
            t.problem("upload_sent", f'server "{server.name}" has no imap endpoint to upload to')
        gateways.append(gateway)
    return gateways


# Rules read before, by their entry: a rule's own checks depend on its entry alone, so an
# organisation changing one rule of 100 reads one (reading 100 took 0.8 ms, at every change, in
# the API's job and again in the daemon). Only rules read without a problem are kept; a dict
# that the writer's thread and the event loop's share (a lookup or a store is atomic).
_READ_RULES: dict[bytes, Rule] = {}
_READ_RULES_KEPT = 20_000


def _read_rules(tables: list[_Table], mailboxes: list[Mailbox], gateways: list[Gateway]) -> list[Rule]:
    rules: list[Rule] = []
    names: set[str] = set()  # (a set: 500 rules compared pairwise took 4 ms of every change)
    gateway_emails = {g.email for g in gateways}
    mailbox_logins = {m.login for m in mailboxes}
    for t in tables:
        key = orjson.dumps(t.data, option=orjson.OPT_SORT_KEYS, default=str)
        rule = _READ_RULES.get(key)
        if rule is None:
            problems_before = len(t.problems.items)
            rule = _read_rule(t)
            if len(t.problems.items) == problems_before:
                if len(_READ_RULES) >= _READ_RULES_KEPT:
                    _READ_RULES.clear()
                _READ_RULES[key] = rule
        if rule.name in names:
            t.problem("name", f'rule "{rule.name}" is defined twice')
        names.add(rule.name)
        if rule.gateway is not None and rule.gateway not in gateway_emails:
            t.problem("gateway", f'unknown gateway "{rule.gateway}"')
        if rule.mailbox is not None and rule.mailbox not in mailbox_logins:
            t.problem("mailbox", f'unknown mailbox "{rule.mailbox}"')
        rules.append(rule)
    return rules


def _read_rule(t: _Table) -> Rule:
    """One rule, with the checks of its entry alone."""
    name = t.text("name", required=True) or ""
    gateway = t.text("gateway")
    mailbox = t.text("mailbox")
    if gateway is not None:
        gateway = gateway.lower()
    rule = Rule(
        name=name, gateway=gateway, mailbox=mailbox,
        subject=t.word_list("subject"), senders=t.word_list("senders"),
        recipients=t.word_list("recipients"),
        action=t.choice("action", ACTION_CHOICES, "comment"),
        task=_task_ref(t), project=t.text("project"), assign_to=t.text("assign_to"),
        delete_after=t.flag("delete_after", False), stop=t.flag("stop", False),
        editable_by_owner=t.flag("editable_by_owner", False),
    )
    t.done()
    if gateway is not None and mailbox is not None:
        t.problem("mailbox", "a rule belongs to a gateway or a mailbox, not both")
    if rule.action == "comment" and not rule.task:
        t.problem("task", 'is required when action = "comment"')
    if rule.action == "new_task" and not rule.project:
        t.problem("project", 'is required when action = "new_task" (the project its tasks are opened in)')
    if rule.action == "new_task" and rule.project and "/" in rule.project:
        t.problem("project", f'"{rule.project}" is not a project name (a project name holds no "/")')
    if rule.action != "comment" and rule.task:
        t.problem("task", f'has no meaning when action = "{rule.action}"')
    if rule.action != "new_task" and rule.project:
        t.problem("project", f'has no meaning when action = "{rule.action}" (new_task opens tasks in it)')
    if rule.action == "ignore" and rule.assign_to:
        t.problem("assign_to", 'has no meaning when action = "ignore"')
    return rule


def _task_ref(t: _Table) -> str | None:
    """A task is "Project/Title" or a task id; TOML may hold the id as a number."""
    t.seen.add("task")
    value = t.data.get("task")
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, str):
        return value.strip()
    t.problem("task", f'must be "Project/Task title" or a task id, not {_type_name(value)}')
    return None
