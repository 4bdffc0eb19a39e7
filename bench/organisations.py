"""Organisations for the benchmarks: each with two users, a project Sales with three tasks,
its own mailboxes on the shared domain and three rules commenting on those tasks."""

from __future__ import annotations

from pathlib import Path

TITLES = ("Invoices", "Orders", "Claims")


def rules(org: str) -> list[dict[str, object]]:
    return [{"name": title.lower(), "subject": f"{title.lower()}-{org}", "action": "comment",
             "task": f"Sales/{title}"} for title in TITLES]


def add_organisations(store: Path, count: int, mailboxes: int = 1) -> None:
    """`count` organisations in the store ("org0"...), each with `mailboxes` mailboxes ("o0-box0"...)."""
    from prostoy_mail.store.sqlite import SqliteStore

    s = SqliteStore(store)
    try:
        with s.transaction():
            for number in range(count):
                org = s.add_organisation(f"org{number}", f"Organisation {number}").id
                with s.acting_for(org):
                    s.add_user(f"owner@org{number}", "Owner", None, True)
                    s.add_user(f"user@org{number}", "User", None, False)
                    s.add_project("Sales")
                    for title in TITLES:
                        s.add_task("Sales", title)
                s.replace_org_entries(org, {"mailboxes": [{"login": f"o{number}-box{i}"} for i in range(mailboxes)],
                                            "rules": rules(f"org{number}")})
    finally:
        s.close()
