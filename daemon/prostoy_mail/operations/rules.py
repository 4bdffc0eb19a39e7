"""Routing rules: add, change, remove, move (the command line's `rule ...`, the API's rules)."""

from __future__ import annotations

from dataclasses import dataclass

from ..config.edit import Value
from ..errors import Conflict, Invalid, NotFound
from .workspace import Workspace, check_limit

UNCHANGED = None  # (a field left None is not changed)


@dataclass(frozen=True, slots=True)
class RuleChange:
    """What to set of a rule; None leaves a field as it is. Exactly one of task / new_task /
    ignore says the action; an empty text clears a condition."""

    gateway: str | None = None  # the rule's scope: this gateway ...
    mailbox: str | None = None  # ... or this domain mailbox ...
    make_global: bool = False  # ... or neither (edit: make it global)
    subject: str | list[str] | None = None  # comma-separated words, or a list
    senders: str | list[str] | None = None
    recipients: str | list[str] | None = None
    task: str | None = None  # comment on this task: "Project/Title" or an id
    new_task: str | None = None  # open a task in this project
    ignore: bool = False
    assign_to: str | None = None  # "" clears it
    delete_after: bool | None = None
    stop: bool | None = None
    editable_by_owner: bool | None = None
    rename: str | None = None

    @property
    def changes_scope(self) -> bool:
        return self.gateway is not None or self.mailbox is not None or self.make_global

    @property
    def changes_action(self) -> bool:
        return self.task is not None or self.new_task is not None or self.ignore

    def values(self, workspace: Workspace) -> dict[str, Value]:
        """The rule's entry fields to set, checked against the store (a task or project named
        must exist: a clear error now, not at the daemon's reload)."""
        if sum((self.task is not None, self.new_task is not None, self.ignore)) > 1:
            raise Invalid("give one action: task, new_task or ignore")
        if sum((self.gateway is not None, self.mailbox is not None, self.make_global)) > 1:
            raise Invalid("give one scope: gateway, mailbox or global")
        store = workspace.store()
        values: dict[str, Value] = {}
        if self.gateway is not None:
            values.update(gateway=self.gateway.lower(), mailbox=None)
        if self.mailbox is not None:
            values.update(mailbox=self.mailbox.lower(), gateway=None)
        if self.make_global:
            values.update(gateway=None, mailbox=None)
        for key in ("subject", "senders", "recipients"):
            value = getattr(self, key)
            if isinstance(value, list):
                value = ", ".join(v.strip() for v in value if v.strip())
            if value is not None:
                values[key] = value if value.strip() else None
        if self.task is not None:
            task = store.resolve_task(self.task)  # fails early with a clear message
            values.update(action="comment", task=task.ref if not self.task.strip().isdigit() else task.id,
                          project=None)
        if self.new_task is not None:
            project = self.new_task.strip()
            if store.find_project(project) is None:
                raise NotFound(f'no project "{project}" (add it: prostoy-mail project add "{project}")')
            values.update(action="new_task", project=project, task=None)
        if self.ignore:
            values.update(action="ignore", task=None, project=None, assign_to=None)
        if self.assign_to is not None:
            values["assign_to"] = self.assign_to or None
        for key in ("delete_after", "stop", "editable_by_owner"):
            if getattr(self, key) is not None:
                values[key] = getattr(self, key)
        return values


def add_rule(workspace: Workspace, name: str, change: RuleChange, position: int | None = None) -> int:
    """The rule, added at `position` (1 = first; default: last); its position."""
    config = workspace.config()
    if not name.strip():
        raise Invalid("a rule needs a name", field="name")
    if config.rule(name) is not None:
        raise Conflict(f'rule "{name}" already exists', field="name")
    if not change.changes_action:
        raise Invalid("say what the rule does: task, new_task or ignore", field="action")
    check_limit(workspace, "rules", len(config.rules))
    doc = workspace.document()
    doc.append("rules", {"name": name, **change.values(workspace)})
    count = len(config.rules) + 1
    if position is not None:
        if not 1 <= position <= count:
            raise Invalid(f"position must be from 1 to {count}")
        doc.move("rules", count - 1, position - 1)
    workspace.save(doc)
    return position or count


def edit_rule(workspace: Workspace, name: str, change: RuleChange) -> str:
    """The rule changed; its name (a new one when renamed)."""
    doc = workspace.document()
    index = doc.index_of("rules", "name", name)
    values = change.values(workspace)
    if change.rename is not None and change.rename != name:
        if workspace.config().rule(change.rename) is not None:
            raise Conflict(f'rule "{change.rename}" already exists', field="name")
        values["name"] = change.rename
    doc.update("rules", index, values)
    workspace.save(doc)
    return change.rename or name


def remove_rule(workspace: Workspace, name: str) -> None:
    doc = workspace.document()
    doc.remove("rules", doc.index_of("rules", "name", name))
    workspace.save(doc)


def move_rule(workspace: Workspace, name: str, position: int) -> None:
    doc = workspace.document()
    index = doc.index_of("rules", "name", name)
    count = len(doc.entries("rules"))
    if not 1 <= position <= count:
        raise Invalid(f"position must be from 1 to {count}")
    doc.move("rules", index, position - 1)
    workspace.save(doc)
