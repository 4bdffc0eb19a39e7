"""Commands on the task store: users, projects, tasks, comments."""

from __future__ import annotations

import argparse

from ..auth.password_hashes import hash_password
from ..operations.users import add_user, remove_user
from ..provisioning import delete_comment
from ..views import comment_json, task_json, user_json
from .common import Context, read_password
from .outbound_cmds import register_task_send


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    user = sub.add_parser("user", help="users (employees) of the organisation").add_subparsers(
        dest="action", required=True, metavar="ACTION")
    p = user.add_parser("add", help="add a user (and their personal task)")
    p.add_argument("login")
    p.add_argument("--name", help="display name (default: the login)")
    p.add_argument("--password-file", metavar="F", help='read the password from F ("-": standard input)')
    p.add_argument("--owner", action="store_true", help="the organisation's owner")
    p.set_defaults(handler=user_add)
    p = user.add_parser("list", help="list users")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=user_list)
    p = user.add_parser("passwd", help="set a user's password")
    p.add_argument("login")
    p.add_argument("--password-file", metavar="F", help='read the password from F ("-": standard input)')
    p.set_defaults(handler=user_passwd)
    p = user.add_parser("remove", help="remove a user (their tasks stay, unassigned)")
    p.add_argument("login")
    p.set_defaults(handler=user_remove)

    project = sub.add_parser("project", help="projects").add_subparsers(dest="action", required=True, metavar="ACTION")
    p = project.add_parser("add", help="add a project")
    p.add_argument("name")
    p.set_defaults(handler=project_add)
    p = project.add_parser("list", help="list projects")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=project_list)

    task = sub.add_parser("task", help="tasks").add_subparsers(dest="action", required=True, metavar="ACTION")
    p = task.add_parser("add", help="add a task to a project")
    p.add_argument("project")
    p.add_argument("title")
    p.add_argument("--assign", metavar="LOGIN")
    p.set_defaults(handler=task_add)
    p = task.add_parser("list", help="list tasks")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=task_list)
    p = task.add_parser("show", help="show one task")
    p.add_argument("task", help='an id or "Project/Title"')
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=task_show)
    p = task.add_parser("comments", help="the comments (mail) of a task")
    p.add_argument("task", help='an id or "Project/Title"')
    p.add_argument("--json", action="store_true")
    p.add_argument("--deleted", action="store_true", help="also deleted comments (tombstones)")
    p.set_defaults(handler=task_comments)

    register_task_send(task)

    comment = sub.add_parser("comment", help="comments").add_subparsers(dest="action", required=True, metavar="ACTION")
    p = comment.add_parser("delete", help="delete a comment (a tombstone keeps it from coming back)")
    p.add_argument("id", type=int)
    p.set_defaults(handler=comment_delete)


# --- users ----------------------------------------------------------------------------------


def user_add(ctx: Context) -> int:
    a = ctx.args
    password = read_password(a.password_file, f"Password for {a.login}", required=False)
    user = add_user(ctx, a.login, a.name or a.login, hash_password(password) if password else None, a.owner)
    ctx.say(f"user {user.login} added; personal task {user.personal_task_id}"
            + ("" if password else " (no password: cannot log in to mail until `user passwd`)"))
    return 0


def user_list(ctx: Context) -> int:
    users = ctx.store().list_users()
    if ctx.args.json:
        ctx.emit_json([user_json(u) for u in users])
    else:
        ctx.emit_table(["LOGIN", "NAME", "OWNER", "PASSWORD", "PERSONAL TASK"],
                       [(u.login, u.name, u.is_owner, u.has_password, u.personal_task_id) for u in users])
    return 0


def user_passwd(ctx: Context) -> int:
    store = ctx.store()
    store.get_user(ctx.args.login)
    password = read_password(ctx.args.password_file, f"New password for {ctx.args.login}", required=True)
    assert password is not None
    store.set_password(ctx.args.login, hash_password(password))
    ctx.say(f"password of {ctx.args.login} changed")
    return 0


def user_remove(ctx: Context) -> int:
    login = ctx.args.login
    remove_user(ctx, login)
    ctx.say(f"user {login} removed")
    return 0


# --- projects and tasks -------------------------------------------------------------------


def project_add(ctx: Context) -> int:
    project = ctx.store().add_project(ctx.args.name)
    ctx.say(f"project {project.name} added (id {project.id})")
    return 0


def project_list(ctx: Context) -> int:
    projects = ctx.store().list_projects()
    if ctx.args.json:
        ctx.emit_json([{"id": p.id, "name": p.name} for p in projects])
    else:
        ctx.emit_table(["ID", "NAME"], [(p.id, p.name) for p in projects])
    return 0


def task_add(ctx: Context) -> int:
    task = ctx.store().add_task(ctx.args.project, ctx.args.title, ctx.args.assign)
    ctx.say(f"task {task.id} added: {task.ref}")
    return 0


def task_list(ctx: Context) -> int:
    tasks = ctx.store().list_tasks()
    if ctx.args.json:
        ctx.emit_json([task_json(t) for t in tasks])
    else:
        ctx.emit_table(["ID", "PROJECT", "TITLE", "ASSIGNEE", "KIND"],
                       [(t.id, t.project, t.title, t.assignee, t.kind) for t in tasks])
    return 0


def task_show(ctx: Context) -> int:
    store = ctx.store()
    task = store.resolve_task(ctx.args.task)
    comments = store.list_comments(task.id)
    data = {**task_json(task), "comments": len(comments)}
    if ctx.args.json:
        ctx.emit_json(data)
    else:
        for key, value in data.items():
            ctx.say(f"{key + ':':<10} {value if value is not None else '-'}")
    return 0


def task_comments(ctx: Context) -> int:
    store = ctx.store()
    task = store.resolve_task(ctx.args.task)
    comments = store.list_comments(task.id, include_deleted=ctx.args.deleted)
    if ctx.args.json:
        ctx.emit_json([comment_json(c) for c in comments])
        return 0
    if not comments:
        ctx.say(f"task {task.id} ({task.ref}) has no comments")
    for c in comments:
        marks = [m for m, on in (("bounce", c.bounce), ("auto-reply", c.auto_reply),
                                 ("deleted", c.deleted_at is not None),
                                 (f"received {c.times_received} times", c.times_received > 1)) if on]
        sender = f"{c.from_name} <{c.from_addr}>" if c.from_name else c.from_addr or "(no From)"
        ctx.say(f"#{c.id} {c.direction} {c.date or c.created_at} from {sender}"
                f" via {c.source}; routed by {', '.join(c.routed_by)}" + (f" [{', '.join(marks)}]" if marks else ""))
        ctx.say(f"  Subject: {c.subject}")
        for a in c.attachments:
            ctx.say(f"  Attachment: {a.filename} ({a.content_type}, {a.size} bytes)")
        for line in c.text.splitlines()[:20]:
            ctx.say(f"  | {line}")
    return 0


def comment_delete(ctx: Context) -> int:
    comment, gateways = delete_comment(ctx.config(), ctx.store(), ctx.args.id)
    ctx.say(f"comment {comment.id} deleted from task {comment.task_id}")
    if gateways:
        ctx.say(f"the message will be deleted from {', '.join(sorted(gateways))} (delete_on_server_when_deleted)")
    return 0
