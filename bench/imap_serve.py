"""Serving mail clients over IMAP: mbsync downloading from prostoy-mail against from Dovecot.

    .venv/bin/python bench/imap_serve.py [--messages 5000] [--size 20000] [--rounds 3]

The same N messages are in a private Dovecot mailbox (written into its Maildir) and in a
domain mailbox of `prostoy-mail serve` (delivered over its SMTP port). Per round, `mbsync`
(isync) copies the INBOX into an empty local Maildir from each, both over IMAPS with the
same kind of certificate. Prints seconds, msg/s and the ratio prostoy/dovecot time (target:
within 2x), and checks that both local copies hold the same messages.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import smtplib
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import trustme

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.fetch_import import fill_maildir, mbsync_inbox
from bench.peers import free_port, wait_port
from tests.dovecot import Dovecot
from tests.tls_files import write_server_pair

CLI = str(Path(sys.executable).parent / "prostoy-mail")
LOGIN = "box@bench.test"


def mbsync(work: Path, name: str, port: int, user: str, password: str, ca_file: Path) -> tuple[float, Path]:
    return mbsync_inbox(work, name, host="localhost", port=port, user=user, password=password,
                        tls=f"SSLType IMAPS\nCertificateFile {ca_file}")


def local_messages(local: Path) -> list[bytes]:
    return sorted(re.sub(rb"(?m)^X-TUID: .*\n", b"", p.read_bytes()).replace(b"\r\n", b"\n")
                  for sub in ("cur", "new") for p in (local / "INBOX" / sub).glob("*"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=5000)
    parser.add_argument("--size", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="pm-bench-imap-"))
    work.chmod(0o755)

    dovecot = Dovecot({LOGIN: "box-pw"}).start()
    fill_maildir(dovecot, LOGIN, args.messages, args.size, "bench")
    maildir = dovecot.base / "home" / LOGIN / "Maildir" / "new"
    raws = [p.read_bytes() for p in sorted(maildir.iterdir())]

    ca = trustme.CA()
    write_server_pair(ca, work, "localhost", "127.0.0.1", common_name="localhost")
    ca.cert_pem.write_to_path(str(work / "ca.pem"))
    smtp_port, imaps_port = free_port(), free_port()
    config = work / "prostoy-mail.toml"
    config.write_text(f"""[daemon]
domain = "bench.test"
store = "store.db"
[listen]
smtp = "127.0.0.1:{smtp_port}"
imaps = "127.0.0.1:{imaps_port}"
[tls]
cert = "cert.pem"
key = "key.pem"
[smtp]
max_message_size = 10485760
[[mailboxes]]
login = "box"
owner = "reader"
""")
    (work / "pw").write_text("reader-pw\n")
    subprocess.run([CLI, "--config", str(config), "user", "add", "reader", "--password-file", str(work / "pw")],
                   check=True, capture_output=True)
    daemon = subprocess.Popen([CLI, "--config", str(config), "serve", "--log-level", "warning"])
    try:
        wait_port(imaps_port)
        started = time.perf_counter()
        with smtplib.SMTP("127.0.0.1", smtp_port, timeout=60) as smtp:
            for raw in raws:
                smtp.sendmail("sender@client.ru", ["box@bench.test"], raw)
        print(f"loadavg {os.getloadavg()}; {args.messages} messages of {args.size} bytes; delivered to prostoy-mail "
              f"in {time.perf_counter() - started:.1f} s")
        ratios = []
        for round_number in range(1, args.rounds + 1):
            dovecot_time, dovecot_local = mbsync(work, "dovecot", dovecot.ports["imaps"], LOGIN, "box-pw",
                                                 dovecot.ca_file)
            prostoy_time, prostoy_local = mbsync(work, "prostoy", imaps_port, "reader", "reader-pw", work / "ca.pem")
            ratio = prostoy_time / dovecot_time
            ratios.append(ratio)
            print(f"round {round_number}: dovecot {dovecot_time:6.2f} s ({args.messages / dovecot_time:6.0f} msg/s)"
                  f"  prostoy {prostoy_time:6.2f} s ({args.messages / prostoy_time:6.0f} msg/s)"
                  f"  prostoy/dovecot time {ratio:.2f}", flush=True)
        same = local_messages(dovecot_local) == local_messages(prostoy_local)
        print(f"\nprostoy/dovecot time: median {statistics.median(ratios):.2f} [{min(ratios):.2f}..{max(ratios):.2f}]"
              f" (target: at most 2.0); both copies hold the same {args.messages} messages: "
              f"{'OK' if same else 'MISMATCH'}")
        return 0 if same else 1
    finally:
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(30)
        dovecot.stop()


if __name__ == "__main__":
    sys.exit(main())
