"""The management API's cost against its framework's floor, measured in one run.

    .venv/bin/python bench/api_requests.py [--seconds 10] [--connections 50]

wrk (Debian's wrk package) with 50 connections against, in turn:
  (a) hello  - a FastAPI hello-world endpoint served the same way (bench/hello_api.py): the floor;
  (a') same  - that process sending, from memory, the very bytes (b) answers: the framework's
               floor for an answer of that size (26 KB);
  (a") route - those bytes from a route declared as (b)'s is, doing nothing else: the
               framework's floor for that route (its parameters and dependencies);
  (b) read   - GET /api/v1/organisations/acme/tasks/ID/comments (50 comments) of `prostoy-mail serve`;
  (a'") store - that process storing each POST's body as a row through the daemon's store writer,
               durable when answered: the floor of any write;
  (c) write  - POST /api/v1/organisations/acme/rules (a new rule, in effect when answered) and
               DELETE of such a rule, in turn: an organisation of --rules rules (default 100)
               and the new ones not yet deleted.
Each with a user's bearer token (b, c: checked against the store's sessions). Prints requests/s
and p99 latency of each, and the ratio of (a) to each: the API must cost at most 2x its
framework's floor; (b) is also given against (a') and (a"), (c) against (a'").
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.api_owner import add_acme, owner_token
from bench.peers import free_port, wait_port
from tests.config_factory import config_text

CLI = str(Path(sys.executable).parent / "prostoy-mail")
WRITE_LUA = """
-- Writes at a steady number of rules: a connection POSTs a new rule, or DELETEs one of its
-- thread's rules whose POST has been answered (so the organisation keeps --rules and at most
-- one more a connection, under its limit of 500, as a real one would).
local threads = 0
function setup(thread)
  threads = threads + 1
  thread:set("id", threads)
end
counter = 0
created = {}
request = function()
  local name = table.remove(created)
  if name then
    return wrk.format("DELETE", "/api/v1/organisations/acme/rules/" .. name)
  end
  counter = counter + 1
  local body = '{"name": "r' .. id .. '-' .. counter .. '", "subject": ["x' .. counter ..
    '"], "action": "comment", "task": "Sales/Invoices"}'
  wrk.headers["Content-Type"] = "application/json"  -- (with -H Authorization: nil headers keep wrk.headers)
  return wrk.format("POST", "/api/v1/organisations/acme/rules", nil, body)
end
response = function(status, headers, body)
  if status == 201 then
    table.insert(created, string.match(body, '"name":%s*"([^"]+)"'))
  end
end
"""

FLOOR_LUA = """
request = function()
  wrk.headers["Content-Type"] = "application/json"
  return wrk.format("POST", nil, nil, '{"name": "r", "subject": ["x"], "action": "comment", "task": "Sales/Invoices"}')
end
"""


def wrk(url: str, seconds: int, connections: int, token: str | None, script: Path | None = None) -> tuple[float, float]:
    """(requests/s, p99 latency in ms) of wrk against `url`; non-2xx answers are an error."""
    command = ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--latency", url]
    if token:
        command += ["-H", f"Authorization: Bearer {token}"]
    if script:
        command += ["-s", str(script)]
    out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    if "Non-2xx" in out:
        raise SystemExit(f"{url}: answers that are not 2xx:\n{out}")
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out)[1])  # type: ignore[index]
    value, unit = re.search(r"99%\s+([\d.]+)(us|ms|s)", out).groups()  # type: ignore[union-attr]
    return rate, float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--rules", type=int, default=100, help="the organisation's rules (its limit: 500)")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed (apt-get install wrk)")
    work = Path(tempfile.mkdtemp(prefix="pm-api-"))
    port, hello_port = free_port(), free_port()
    config = work / "prostoy-mail.toml"
    config.write_text(config_text(listen={"http": f"127.0.0.1:{port}"}, smtp={"workers": 0}))
    task = _setup(work / "store.db", args.rules)
    daemon = subprocess.Popen([CLI, "--config", str(config), "serve", "--log-level", "warning"])
    processes = [daemon]
    try:
        wait_port(port)
        base = f"http://127.0.0.1:{port}/api/v1"
        token = owner_token(base)
        read_url = f"{base}/organisations/acme/tasks/{task}/comments"
        answer = work / "answer.json"
        answer.write_bytes(httpx.get(read_url, headers={"Authorization": f"Bearer {token}"}).raise_for_status()
                           .content)
        processes.append(subprocess.Popen([sys.executable, str(Path(__file__).parent / "hello_api.py"),
                                           str(hello_port), str(answer), str(work / "floor.db")]))
        wait_port(hello_port)
        script = work / "write.lua"
        script.write_text(WRITE_LUA)
        floor_script = work / "floor.lua"
        floor_script.write_text(FLOOR_LUA)
        print(f"loadavg {os.getloadavg()}; wrk -t2 -c{args.connections} -d{args.seconds}s; "
              f"the read's answer: {answer.stat().st_size} bytes", flush=True)
        results = {
            "hello (floor)": wrk(f"http://127.0.0.1:{hello_port}/hello", args.seconds, args.connections, None),
            "same bytes from memory": wrk(f"http://127.0.0.1:{hello_port}/same", args.seconds, args.connections,
                                          None),
            "same route, nothing done": wrk(f"http://127.0.0.1:{hello_port}/api/v1/organisations/acme/tasks/"
                                            f"{task}/comments", args.seconds, args.connections, token),
            "read: GET comments (50)": wrk(read_url, args.seconds, args.connections, token),
            "a durable row": wrk(f"http://127.0.0.1:{hello_port}/write", args.seconds, args.connections, None,
                                 floor_script),
            f"write: rules ({args.rules})": wrk(f"{base}/organisations/acme/rules", args.seconds, args.connections,
                                                token, script),
        }
        floor = results["hello (floor)"][0]
        for name, (rate, p99) in results.items():
            print(f"{name:26} {rate:8.0f} req/s  p99 {p99:7.1f} ms  floor/this {floor / rate:5.2f}")
        read = results["read: GET comments (50)"][0]
        for floor_name in ("same bytes from memory", "same route, nothing done"):
            print(f"read against {floor_name}: {results[floor_name][0] / read:.2f}x")
        write = results[f"write: rules ({args.rules})"][0]
        print(f"write against a durable row: {results['a durable row'][0] / write:.2f}x")
    finally:
        for process in processes:
            process.send_signal(signal.SIGTERM)
            process.wait(30)
    return 0


def _setup(store_path: Path, rules: int) -> int:
    from prostoy_mail.store.ports import CommentTarget, MessageRecord
    from prostoy_mail.store.sqlite import SqliteStore

    store = SqliteStore(store_path)
    try:
        acme = add_acme(store)
        with store.acting_for(acme):
            store.add_project("Sales")
            task = store.add_task("Sales", "Invoices").id
            for number in range(50):
                text = f"Subject: invoice {number}\r\nFrom: a@b.c\r\n\r\n" + "body text\r\n" * 20
                store.store_message(MessageRecord(raw=text.encode(), direction="in", source="smtp",
                                                  subject=f"invoice {number}", text="body text\n" * 20),
                                    [CommentTarget(task, ("bench",))])
        store.replace_org_entries(acme, {"rules": [{"name": f"base-{n}", "subject": [f"s{n}"], "action": "comment",
                                                    "task": "Sales/Invoices"} for n in range(rules)]})
        return task
    finally:
        store.close()



if __name__ == "__main__":
    sys.exit(main())
