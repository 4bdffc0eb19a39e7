"""What an organisation in the store (a customer of the provider) may not do with its settings:
name the daemon's files, or make the daemon connect to the provider's own network."""

from __future__ import annotations

from pathlib import Path

import pytest

from prostoy_mail.config.load import parse_config
from prostoy_mail.config.model import Config, Endpoint
from prostoy_mail.config.organisation import organisation_config
from prostoy_mail.errors import ConfigError
from prostoy_mail.fetch.errors import FetchError
from prostoy_mail.fetch.imap import ImapConnection, TlsSettings
from prostoy_mail.public_address import PrivateAddress, check_public
from tests.config_factory import config_text

pytestmark = pytest.mark.unit

SERVER = {"name": "own.example", "imap": "10.1.2.3:993"}
GATEWAY = {"email": "info@own.example", "server": "own.example", "login": "info", "password": "pw"}


def file_config(private_servers: bool = False) -> Config:
    return parse_config(config_text(fetch={"private_servers": private_servers}), Path("/etc/pm.toml"))


def test_an_organisations_settings_may_not_name_the_daemons_files() -> None:
    without_password = {key: value for key, value in GATEWAY.items() if key != "password"}
    entries = {"servers": [{**SERVER, "ca_file": "/etc/ssl/private/ca.pem"}],
               "gateways": [{**without_password, "password_file": "/etc/shadow"}]}
    with pytest.raises(ConfigError) as refused:
        organisation_config(file_config(), "acme", entries)
    assert [str(p) for p in refused.value.problems] == [
        "organisation acme: gateways[1].password_file: an organisation in the store cannot use the daemon's files:"
        " give the password itself",
        "organisation acme: servers[1].ca_file: an organisation in the store cannot use the daemon's files"]


def test_an_organisations_servers_are_public_only_unless_the_provider_allows_private_ones() -> None:
    entries = {"servers": [SERVER], "gateways": [GATEWAY]}
    hosted = organisation_config(file_config(), "acme", entries)
    assert all(server.public_only for server in hosted.servers)
    allowed = organisation_config(file_config(private_servers=True), "acme", entries)
    assert not any(server.public_only for server in allowed.servers)
    assert not any(server.public_only for server in file_config().servers)


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "10.0.0.1", "192.168.1.1", "169.254.169.254",
                                  "100.64.0.1", "::1", "::ffff:127.0.0.1", "fe80::1", "0.0.0.0"])
def test_private_and_reserved_addresses_are_refused(host: str) -> None:
    with pytest.raises(PrivateAddress, match="private or reserved address"):
        check_public(host, 993)


def test_a_public_address_is_allowed() -> None:
    check_public("8.8.8.8", 993)
    check_public("2a00:1450:4010:c05::6d", 993)


def test_a_gateway_never_connects_to_a_private_address_when_public_only() -> None:
    # nothing listens on this port; a connection attempt would fail as "connect: refused",
    # the check fails before any attempt, naming the address
    with pytest.raises(FetchError) as refused:
        ImapConnection.open(Endpoint("127.0.0.1", 9), TlsSettings("none", public_only=True), "u", "p")
    assert refused.value.step == "connect" and "private or reserved address" in str(refused.value)
