"""Real peers for benchmarks, run privately on loopback high ports.

- a private Postfix instance delivering durably into Maildirs (Debian's postfix package);
- a bare aiosmtpd server whose handler only answers 250 (the Python floor);
- smtp-source (from the postfix package) as the SMTP load generator.
"""

from __future__ import annotations

import os
import pwd
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.ports import free_port, wait_port

__all__ = ["NullAiosmtpd", "PrivatePostfix", "free_port", "smtp_source", "wait_port"]


class PrivatePostfix:
    """`postfix -c DIR` with its own queue, delivering to Maildirs under DIR/maildir."""

    def __init__(self, base: Path, domain: str = "bench.test") -> None:
        self.base = base
        self.domain = domain
        self.port = free_port()

    def start(self) -> None:
        if shutil.which("postfix") is None:
            raise RuntimeError("postfix is not installed (apt-get install postfix)")
        shutil.rmtree(self.base, ignore_errors=True)
        etc = self.base / "etc"
        for sub in ("etc", "queue", "data", "maildir"):
            (self.base / sub).mkdir(parents=True, exist_ok=True)
        user = pwd.getpwnam("postfix")
        os.chown(self.base / "data", user.pw_uid, user.pw_gid)
        os.chown(self.base / "maildir", user.pw_uid, user.pw_gid)
        (etc / "main.cf").write_text(f"""\
compatibility_level = 3.6
queue_directory = {self.base}/queue
data_directory = {self.base}/data
mail_owner = postfix
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
myhostname = postfix.{self.domain}
mydestination =
mynetworks = 127.0.0.0/8
smtpd_recipient_restrictions = permit_mynetworks, reject
virtual_mailbox_domains = {self.domain}
virtual_mailbox_base = {self.base}/maildir
virtual_mailbox_maps = static:box/
virtual_uid_maps = static:{user.pw_uid}
virtual_gid_maps = static:{user.pw_gid}
virtual_minimum_uid = 1
default_process_limit = 200
smtpd_client_connection_count_limit = 0
maillog_file = {self.base}/maillog
maillog_file_prefixes = {self.base}
""")
        master = Path("/etc/postfix/master.cf").read_text()
        master = re.sub(r"(?m)^smtp\s+inet\s.*$", f"127.0.0.1:{self.port} inet n - n - - smtpd", master)
        master = re.sub(r"(?m)^(\S+\s+(?:unix|inet|fifo|pass)\s+\S+\s+\S+\s+)y(\s)", r"\1n\2", master)
        (etc / "master.cf").write_text(master)
        subprocess.run(["postfix", "-c", str(etc), "check"], check=False, capture_output=True)
        subprocess.run(["postfix", "-c", str(etc), "start"], check=True, capture_output=True)
        wait_port(self.port)

    def delivered(self) -> int:
        new = self.base / "maildir" / "box" / "new"
        return len(os.listdir(new)) if new.exists() else 0

    def stop(self) -> None:
        subprocess.run(["postfix", "-c", str(self.base / "etc"), "stop"], check=False, capture_output=True)


class NullAiosmtpd:
    """A bare aiosmtpd server in its own process: its handler answers 250 and keeps nothing."""

    CODE = """
import asyncio, sys
from aiosmtpd.smtp import SMTP
class Null:
    async def handle_DATA(self, server, session, envelope):
        return "250 OK"
async def main():
    loop = asyncio.get_running_loop()
    factory = lambda: SMTP(Null(), hostname="null.test", loop=loop, data_size_limit=int(sys.argv[2]))
    server = await loop.create_server(factory, "127.0.0.1", int(sys.argv[1]))
    await server.serve_forever()
asyncio.run(main())
"""

    def __init__(self, data_size_limit: int = 2**25) -> None:
        self.port = free_port()
        self.data_size_limit = data_size_limit
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen([sys.executable, "-c", self.CODE, str(self.port), str(self.data_size_limit)])
        wait_port(self.port)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(10)


def smtp_source(port: int, *, messages: int, sessions: int, size: int, to: str,
                reuse: bool = False) -> float:
    """Send with smtp-source; return the wall time in seconds."""
    args = ["smtp-source", "-s", str(sessions), "-m", str(messages), "-l", str(size),
            "-f", "load@source.test", "-t", to]
    if reuse:
        args.append("-d")
    start = time.perf_counter()
    subprocess.run([*args, f"127.0.0.1:{port}"], check=True, capture_output=True, timeout=900)
    return time.perf_counter() - start
