"""Where the configuration meets the task store.

Mailboxes and gateways live in the TOML file, users and tasks in the store. This module
checks the file's references into the store and makes sure every mailbox and gateway has
its task (the daemon does it at start and reload, the command line when it adds one).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass

from .config.model import Config, Gateway, Mailbox, Rule
from .config.organisation import display_name, organisation_config
from .errors import ConfigError, Problem, ProstoyMailError
from .routing.index import RuleList
from .routing.router import RoutingTable, Scope
from .routing.rules import GLOBAL, Condition, RoutingRule
from .store.ports import Comment, Organisation, Task, TaskStore
from .store.roles import CommentRemoval


def mailbox_source_key(login: str) -> str:
    return f"mailbox:{login}"


def gateway_source_key(email: str) -> str:
    return f"gateway:{email}"


def ensure_mailbox_task(config: Config, store: TaskStore, mailbox: Mailbox) -> Task:
    return store.ensure_source_task(
        mailbox_source_key(mailbox.login), "mailbox", config.daemon.mail_project,
        mailbox.address(config.daemon.domain), mailbox.owner,
    )


def ensure_gateway_task(config: Config, store: TaskStore, gateway: Gateway) -> Task:
    return store.ensure_source_task(
        gateway_source_key(gateway.email), "gateway", config.daemon.mail_project,
        gateway.email, gateway.personal_for,
    )


def ensure_mail_tasks(config: Config, store: TaskStore) -> None:
    """Every mailbox and gateway of the configuration gets its task (also hand-added ones)."""
    for mailbox in config.mailboxes:
        ensure_mailbox_task(config, store, mailbox)
    for gateway in config.gateways:
        ensure_gateway_task(config, store, gateway)


def check_references(config: Config, store: TaskStore, file: str) -> list[Problem]:
    """References from the file into the store: users and tasks that must exist."""
    problems: list[Problem] = []
    # Each name asked of the store once (500 rules naming a few tasks: a few queries, not 500)
    users: dict[str, bool] = {}
    tasks: dict[str, str | None] = {}
    projects: dict[str, bool] = {}

    def user_exists(login: str | None, key: str) -> None:
        if login is None:
            return
        if login not in users:
            users[login] = store.find_user(login) is not None
        if not users[login]:
            problems.append(Problem(file, key, f'no user "{login}" (add it: prostoy-mail user add {login})'))

    def task_problem(ref: str) -> str | None:
        if ref not in tasks:
            try:
                store.resolve_task(ref)
                tasks[ref] = None
            except ProstoyMailError as exc:  # no such task, or an ambiguous "Project/Title"
                tasks[ref] = str(exc)
        return tasks[ref]

    for i, mailbox in enumerate(config.mailboxes, 1):
        user_exists(mailbox.owner, f"mailboxes[{i}].owner")
        for login in mailbox.users:
            user_exists(login, f"mailboxes[{i}].users")
    for i, gateway in enumerate(config.gateways, 1):
        user_exists(gateway.personal_for, f"gateways[{i}].personal_for")
        for login in gateway.users:
            user_exists(login, f"gateways[{i}].users")
    for i, rule in enumerate(config.rules, 1):
        user_exists(rule.assign_to, f"rules[{i}].assign_to")
        if rule.task is not None and (problem := task_problem(rule.task)) is not None:
            problems.append(Problem(file, f"rules[{i}].task", problem))
        if rule.project is not None and rule.action == "new_task":
            if rule.project not in projects:
                projects[rule.project] = store.find_project(rule.project) is not None
            if not projects[rule.project]:
                problems.append(Problem(file, f"rules[{i}].project", f'no project "{rule.project}" (add it: '
                                        f'prostoy-mail project add "{rule.project}")'))
    return problems


def delete_comment(config: Config, store: CommentRemoval, comment_id: int) -> tuple[Comment, set[str]]:
    """Delete a comment (a tombstone stays) and, where its gateway says so, its message on the
    external server too (done by the gateway's watcher). Returns the comment and those gateways."""
    with store.transaction():
        comment = store.delete_comment(comment_id)
        gateways = {k.gateway for k in store.fetched_keys(comment.message_db_id)}
        if any((g := config.gateway(email)) is not None and g.delete_on_server_when_deleted for email in gateways):
            return comment, {k.gateway for k in store.schedule_server_delete(comment.message_db_id)}
    return comment, set()


def personal_task_id(store: TaskStore, login: str | None) -> int | None:
    if login is None:
        return None
    user = store.find_user(login)
    return None if user is None else user.personal_task_id


@dataclass(frozen=True, slots=True)
class OrganisationRules:
    """One organisation's rules and scopes, their tasks resolved to ids in the store."""

    global_rules: RuleList
    scopes: dict[str, Scope]
    opens_tasks: bool  # some rule is a new_task one


def build_routing_table(config: Config, store: TaskStore, organisations: Sequence[tuple[int, Config]] = (),
                        org_id: int | None = None) -> RoutingTable:
    """The rules with their tasks resolved to ids, and each mailbox's fallback: the file's
    organisation's (`config`; or organisation `org_id`'s, the store acting for it), and those of
    `organisations` that live in the store (their scopes carry their own global rules; their
    references are resolved in their own tasks).

    Raises ConfigError when a rule of the file names a task or user that does not exist.
    """
    problems = check_references(config, store, str(config.path))
    if problems:
        raise ConfigError(problems)
    own = org_id if org_id is not None else store.file_organisation_id()
    others = []
    for other, org_config in organisations:
        with store.acting_for(other):
            others.append(compile_organisation(org_config, store, other))
    return routing_table(config, compile_organisation(config, store, own), own, others,
                         store.organisation_slugs())


def routing_table(config: Config, own: OrganisationRules, own_org: int, others: Iterable[OrganisationRules],
                  slugs: Mapping[int, str]) -> RoutingTable:
    """One table from organisations' compiled rules: `own`'s global rules are the table's."""
    scopes = dict(own.scopes)
    opens = own.opens_tasks
    for rules in others:
        scopes.update(rules.scopes)
        opens = opens or rules.opens_tasks
    return RoutingTable(own.global_rules, scopes, config.routing.new_tasks_per_sender_per_hour, opens_tasks=opens,
                        slugs=slugs, own_org=own_org)


def compile_organisation(config: Config, store: TaskStore, org_id: int) -> OrganisationRules:
    """One organisation's rules and scopes (the store acting for it)."""
    task_ids: dict[str, int] = {}  # (each task or project a rule names asked of the store once)
    project_ids: dict[str, int | None] = {}

    def compile_rule(rule: Rule) -> RoutingRule:
        scope = (GLOBAL if rule.is_global else mailbox_source_key(rule.mailbox) if rule.mailbox
                 else gateway_source_key(rule.gateway or ""))
        conditions = tuple(c for c in (Condition.of("subject", rule.subject), Condition.of("senders", rule.senders),
                                       Condition.of("recipients", rule.recipients)) if c.items)
        task_id = None
        if rule.task:
            if rule.task not in task_ids:
                task_ids[rule.task] = store.resolve_task(rule.task).id
            task_id = task_ids[rule.task]
        project_id = None
        if rule.project and rule.action == "new_task":
            if rule.project not in project_ids:
                project = store.find_project(rule.project)
                project_ids[rule.project] = project.id if project is not None else None
            project_id = project_ids[rule.project]
        return RoutingRule(rule.name, scope, conditions, rule.action, task_id, rule.assign_to, rule.delete_after,
                           rule.stop, project_id=project_id)

    compiled = [compile_rule(r) for r in config.rules]
    global_rules = RuleList([r for r in compiled if r.scope == GLOBAL])
    scopes: dict[str, Scope] = {}
    for mailbox in config.mailboxes:
        key = mailbox_source_key(mailbox.login)
        own = ensure_mailbox_task(config, store, mailbox).id
        scopes[key] = Scope(key, RuleList([r for r in compiled if r.scope == key]),
                            personal_task_id(store, mailbox.owner) or own, org_id, global_rules)
    for gateway in config.gateways:
        key = gateway_source_key(gateway.email)
        own = ensure_gateway_task(config, store, gateway).id
        scopes[key] = Scope(key, RuleList([r for r in compiled if r.scope == key]),
                            personal_task_id(store, gateway.personal_for) or own, org_id, global_rules)
    return OrganisationRules(global_rules, scopes, any(r.action == "new_task" for r in compiled))


@dataclass(frozen=True, slots=True)
class Owners:
    """Which organisation each mailbox login of the shared domain and each gateway address
    belongs to: first come. A name once used stays with its organisation (its task and mail
    are there) even after the mailbox or gateway is removed; then the store's organisations'
    entries, then the file's. (A gateway's address is the installation's once: two
    organisations fetching one external mailbox would fight over its mail.)"""

    mailboxes: dict[str, int]
    gateways: dict[str, int]
    domains: dict[str, int]  # organisations' own domains (a mailbox login@domain must be on its own)

    @classmethod
    def of(cls, file_config: Config, store: TaskStore, among: Collection[Config] | None = None) -> Owners:
        """Of every name; with `among`, of the names those organisations' settings use only (a
        change of one organisation: a few indexed lookups, not every name of the installation)."""
        file_org = store.file_organisation_id()
        found: list[dict[str, int]] = []
        for kind, section, names in (("mailbox", "mailboxes", [m.login for m in file_config.mailboxes]),
                                     ("gateway", "gateways", [g.email for g in file_config.gateways])):
            wanted = None if among is None else {
                name for config in among
                for name in ([m.login for m in config.mailboxes] if kind == "mailbox"
                             else [g.email for g in config.gateways])}
            if wanted is not None and not wanted:
                found.append({})
                continue
            owners = store.source_task_owners(kind, wanted)
            for name, org_id in store.org_entry_names(section, wanted):
                owners.setdefault(name, org_id)
            for name in names:
                if wanted is None or name in wanted:
                    owners.setdefault(name, file_org)
            found.append(owners)
        return cls(found[0], found[1], store.domain_owners())


def ownership_conflicts(config: Config, org_id: int, file_config: Config, store: TaskStore, file: str,
                        owners: Owners | None = None) -> list[Problem]:
    """The mailboxes and gateways of `config` (organisation `org_id`'s) that another
    organisation has (`owners`: Owners.of, when the caller has it already)."""
    if owners is None:
        owners = Owners.of(file_config, store)
    domain, mailboxes, gateways = config.daemon.domain, owners.mailboxes, owners.gateways
    slug = config.organisation.slug
    return [*(Problem(file, f"mailboxes[{i}].login", f"{mailbox.login.partition('@')[2]} is not a domain of this "
                      f"organisation (add it: prostoy-mail --org {slug} domain add {mailbox.login.partition('@')[2]})")
              for i, mailbox in enumerate(config.mailboxes, 1)
              if "@" in mailbox.login and owners.domains.get(mailbox.login.partition("@")[2]) != org_id),
            *(Problem(file, f"mailboxes[{i}].login", f"{mailbox.address(domain)} belongs to another organisation")
              for i, mailbox in enumerate(config.mailboxes, 1) if mailboxes.get(mailbox.login, org_id) != org_id),
            *(Problem(file, f"gateways[{i}].email", f"{gateway.email} is connected by another organisation")
              for i, gateway in enumerate(config.gateways, 1) if gateways.get(gateway.email, org_id) != org_id)]


def organisation_settings(file_config: Config, store: TaskStore, organisation: Organisation, owners: Owners | None,
                          parsed: Mapping[bytes, Config] | None = None, keep: dict[bytes, Config] | None = None
                          ) -> Config | None:
    """The settings of an organisation that lives in the store, read like a file (None: it has
    none); ConfigError when they do not load, name what is not in the store, or take a mailbox
    or gateway another organisation has (`owners`: of every name; None: looked up for its names)."""
    entries = store.org_entries(organisation.id)
    if not entries:
        return None
    config = organisation_config(file_config, organisation.slug, entries, parsed, keep)
    with store.acting_for(organisation.id):
        problems = check_references(config, store, display_name(organisation.slug))
    problems += ownership_conflicts(config, organisation.id, file_config, store, display_name(organisation.slug),
                                    owners if owners is not None else Owners.of(file_config, store, [config]))
    if problems:
        raise ConfigError(problems)
    return config
