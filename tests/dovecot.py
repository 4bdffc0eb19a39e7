"""A private Dovecot (Debian's dovecot-imapd and dovecot-pop3d) standing in for mail.ru & co.

It runs as a child process with its own configuration, passwd-file users and Maildirs under
a scratch folder, listening on loopback high ports: IMAP (with STARTTLS), IMAPS, POP3 (with
STLS) and POP3S, with a certificate from a throw-away trustme CA.
"""

from __future__ import annotations

import imaplib
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import trustme

from tests.ports import free_port


@dataclass
class Dovecot:
    users: dict[str, str]  # login -> password
    base: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="pm-dovecot-")))
    ports: dict[str, int] = field(default_factory=lambda: {n: free_port() for n in ("imap", "imaps", "pop3", "pop3s")})
    ca: trustme.CA = field(default_factory=trustme.CA)
    process: subprocess.Popen[bytes] | None = None
    extra_config: str = ""  # more of dovecot.conf (bench/gateways_scale.py: limits for thousands of sessions)

    @property
    def ca_file(self) -> Path:
        return self.base / "ca.pem"

    def gateway_toml(self, login: str, *, server: str = "dovecot.test", options: str = "") -> str:
        """[[servers]] and [[gateways]] entries fetching `login`'s mail over plain IMAP
        (`options`: more gateway keys, one per line)."""
        return f"""[[servers]]
name = "{server}"
imap = "127.0.0.1:{self.ports['imap']}"
fetch_security = "none"
ssl = false
[[gateways]]
email = "{login}"
server = "{server}"
login = "{login}"
password = "{self.users[login]}"
{options}
"""

    def start(self) -> Dovecot:
        if shutil.which("dovecot") is None:
            raise RuntimeError("dovecot is not installed: apt-get install dovecot-imapd dovecot-pop3d")
        self.base.chmod(0o755)
        nobody = pwd.getpwnam("nobody")
        cert = self.ca.issue_cert("localhost", "127.0.0.1", common_name="localhost")  # isync 1.4 wants a CN
        cert.private_key_and_cert_chain_pem.write_to_path(str(self.base / "server.pem"))
        self.ca.cert_pem.write_to_path(str(self.ca_file))
        lines = []
        for login, password in self.users.items():
            home = self.base / "home" / login
            home.mkdir(parents=True)
            os.chown(home, nobody.pw_uid, nobody.pw_gid)
            lines.append(f"{login}:{{PLAIN}}{password}:{nobody.pw_uid}:{nobody.pw_gid}::{home}")
        (self.base / "passwd").write_text("\n".join(lines) + "\n")
        (self.base / "run").mkdir()
        (self.base / "dovecot.conf").write_text(f"""\
protocols = imap pop3
listen = 127.0.0.1
base_dir = {self.base}/run
state_dir = {self.base}/state
instance_name = pm-dovecot-{self.ports['imap']}
log_path = {self.base}/dovecot.log
info_log_path = {self.base}/dovecot.log
ssl = yes
ssl_cert = <{self.base}/server.pem
ssl_key = <{self.base}/server.pem
disable_plaintext_auth = no
auth_mechanisms = plain login
first_valid_uid = 1
mail_location = maildir:~/Maildir
default_login_user = dovenull
default_internal_user = dovecot
passdb {{
  driver = passwd-file
  args = {self.base}/passwd
}}
userdb {{
  driver = passwd-file
  args = {self.base}/passwd
}}
service imap-login {{
  inet_listener imap {{
    port = {self.ports['imap']}
  }}
  inet_listener imaps {{
    port = {self.ports['imaps']}
    ssl = yes
  }}
}}
service pop3-login {{
  inet_listener pop3 {{
    port = {self.ports['pop3']}
  }}
  inet_listener pop3s {{
    port = {self.ports['pop3s']}
    ssl = yes
  }}
}}
protocol imap {{
  mail_max_userip_connections = 100
}}
namespace inbox {{
  inbox = yes
  mailbox Sent {{
    special_use = \\Sent
    auto = create
  }}
}}
{self.extra_config}
""")
        self.process = subprocess.Popen(["dovecot", "-F", "-c", str(self.base / "dovecot.conf")],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.ports["imap"]), timeout=1) as s:
                    if s.recv(100).startswith(b"* OK"):
                        return self
            except OSError:
                time.sleep(0.05)
            if self.process.poll() is not None:
                error = self.process.stderr.read().decode() if self.process.stderr else ""
                raise RuntimeError(f"dovecot exited: {error}{self.log()}")
        raise RuntimeError(f"dovecot did not start: {self.log()}")

    def log(self) -> str:
        path = self.base / "dovecot.log"
        return path.read_text() if path.exists() else ""

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
        shutil.rmtree(self.base, ignore_errors=True)

    # --- what a test does to the mailbox, as another mail client would -------------------

    def client(self, login: str) -> imaplib.IMAP4:
        imap = imaplib.IMAP4("127.0.0.1", self.ports["imap"])
        imap.login(login, self.users[login])
        return imap

    def append(self, login: str, raw: bytes, mailbox: str = "INBOX", flags: str = "") -> None:
        imap = self.client(login)
        try:
            status, data = imap.append(mailbox, flags or None, None, raw)
            assert status == "OK", data
        finally:
            imap.logout()

    def messages(self, login: str, mailbox: str = "INBOX") -> list[tuple[int, str, bytes]]:
        """(UID, flags, raw) of every message in the mailbox."""
        imap = self.client(login)
        try:
            imap.select(mailbox)
            _, data = imap.uid("FETCH", "1:*", "(UID FLAGS BODY.PEEK[])")
            out = []
            for item in data:
                if isinstance(item, tuple):
                    meta = item[0].decode()
                    uid = int(meta.split("UID ")[1].split()[0])
                    flags = meta.split("FLAGS (")[1].split(")")[0]
                    out.append((uid, flags, item[1]))
            return out
        finally:
            imap.logout()
