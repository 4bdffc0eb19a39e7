"""Edits keep the admin's file: comments and layout survive outside the changed entry."""

from __future__ import annotations

import difflib
import os
from pathlib import Path

import pytest

from prostoy_mail.config.edit import ConfigDocument, atomic_write
from prostoy_mail.config.model import Endpoint
from prostoy_mail.errors import ConfigError, ProstoyMailError

HAND_WRITTEN = """\
# Our mail, set up by Olga (call 1234 before changing!)
[daemon]
domain = "example.test"   # the CRM's domain
store = "store.db"

[listen]
smtp = "127.0.0.1:2525"  # loopback only for now

# --- mailboxes ---
[[mailboxes]]
login = "sales"   # the sales team

# Ivan's own box
[[mailboxes]]
login = "ivan"

# --- rules, in order ---

# invoices from clients
[[rules]]
name = "invoices"
subject = "счёт, invoice"  # Russian and English
action = "ignore"

[[rules]]
name = "spam"
subject = "viagra"
action = "ignore"
# last rule: newsletters
[[rules]]
name = "news"
senders = "news@"
action = "ignore"

# end of file: keep this line
"""


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "prostoy-mail.toml"
    path.write_text(HAND_WRITTEN)
    return path


def changed_lines(before: str, after: str) -> tuple[list[str], list[str]]:
    removed, added = [], []
    for line in difflib.ndiff(before.splitlines(), after.splitlines()):
        if line.startswith("- "):
            removed.append(line[2:])
        elif line.startswith("+ "):
            added.append(line[2:])
    return removed, added


def test_removing_an_entry_removes_only_its_lines(config: Path) -> None:
    doc = ConfigDocument(config)
    doc.remove("rules", doc.index_of("rules", "name", "spam"))
    doc.save()
    removed, added = changed_lines(HAND_WRITTEN, config.read_text())
    assert sorted(removed) == sorted(["[[rules]]", 'name = "spam"', 'subject = "viagra"', 'action = "ignore"'])
    assert added == []
    assert "# last rule: newsletters" in config.read_text()  # the next entry's comment stays


def test_removing_takes_the_entry_s_own_comment_along(config: Path) -> None:
    doc = ConfigDocument(config)
    doc.remove("mailboxes", doc.index_of("mailboxes", "login", "ivan"))
    doc.save()
    removed, added = changed_lines(HAND_WRITTEN, config.read_text())
    assert sorted(removed) == sorted(["# Ivan's own box", "[[mailboxes]]", 'login = "ivan"', ""])
    assert added == []


def test_adding_an_entry_only_adds_lines_after_its_section(config: Path) -> None:
    doc = ConfigDocument(config)
    doc.append("mailboxes", {"login": "info", "owner": None})
    doc.save()
    text = config.read_text()
    removed, added = changed_lines(HAND_WRITTEN, text)
    assert removed == [] and sorted(added) == sorted(["[[mailboxes]]", 'login = "info"', ""])
    assert text.index('login = "info"') < text.index("# --- rules, in order ---")


def test_adding_the_first_entry_of_a_section_appends_it(config: Path) -> None:
    doc = ConfigDocument(config)
    doc.append("servers", {"name": "mail.example.org", "imap": Endpoint("imap.example.org", 993)})
    doc.save()
    text = config.read_text()
    assert text.startswith(HAND_WRITTEN)
    assert text.endswith('[[servers]]\nname = "mail.example.org"\nimap = {host = "imap.example.org", port = 993}\n')


def test_moving_a_rule_moves_its_block_with_its_comment(config: Path) -> None:
    doc = ConfigDocument(config)
    doc.move("rules", 2, 0)
    config_after = doc.save()
    assert [r.name for r in config_after.rules] == ["news", "invoices", "spam"]
    text = config.read_text()
    assert text.index("# last rule: newsletters") < text.index("# invoices from clients")
    # every line of the original is still there, nothing added but blank lines
    removed, added = changed_lines(HAND_WRITTEN, text)
    assert sorted(set(removed) - {""}) == sorted(set(added) - {""})


def test_updating_a_value_keeps_the_rest(config: Path) -> None:
    doc = ConfigDocument(config)
    doc.update("rules", 0, {"subject": "счёт", "stop": True})
    doc.save()
    removed, added = changed_lines(HAND_WRITTEN, config.read_text())
    assert removed == ['subject = "счёт, invoice"  # Russian and English']
    assert added[0].startswith('subject = "счёт"') and added[1:] == ["stop = true"]


def test_an_invalid_result_is_not_written(config: Path) -> None:
    doc = ConfigDocument(config)
    doc.remove("mailboxes", doc.index_of("mailboxes", "login", "sales"))
    doc.append("rules", {"name": "x", "mailbox": "sales", "action": "ignore"})
    with pytest.raises(ConfigError) as err:
        doc.save()
    assert 'rules[4].mailbox: unknown mailbox "sales"' in str(err.value)
    assert config.read_text() == HAND_WRITTEN


def test_a_layout_too_odd_to_edit_safely_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "odd.toml"
    # a multi-line string with a line that looks like a header
    path.write_text('[[rules]]\nname = "a"\naction = "ignore"\nsubject = """\n[[rules]]\n"""\n')
    doc = ConfigDocument(path)
    with pytest.raises(ProstoyMailError, match="edit it by hand"):
        doc.remove("rules", 0)


def test_atomic_write_keeps_the_mode_and_leaves_no_temporary_file(config: Path) -> None:
    os.chmod(config, 0o640)
    atomic_write(config, "x = 1\n")
    assert config.read_text() == "x = 1\n"
    assert oct(config.stat().st_mode & 0o777) == "0o640"
    assert [p.name for p in config.parent.iterdir()] == [config.name]


@pytest.mark.skipif(os.geteuid() != 0, reason="changing a file's owner needs root")
def test_an_edit_keeps_the_files_owner_group_and_mode(config: Path) -> None:
    """root editing /etc/prostoy-mail/prostoy-mail.toml (root:prostoy-mail 0640) must not leave
    it root:root, which the service user could no longer read."""
    os.chown(config, 1234, 4321)
    config.chmod(0o640)
    doc = ConfigDocument(config)
    doc.append("mailboxes", {"login": "extra"})
    doc.save()
    after = config.stat()
    assert (after.st_uid, after.st_gid, after.st_mode & 0o7777) == (1234, 4321, 0o640)
    assert "extra" in config.read_text()
