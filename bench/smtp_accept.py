"""SMTP acceptance: prostoy-mail against Postfix and bare aiosmtpd, measured in one run.

    .venv/bin/python bench/smtp_accept.py [--rounds 3] [--messages 3000] [--rules 1000]

Load: smtp-source (Debian's postfix package), one connection per message, 10 and 50
parallel sessions, 2 KB and 100 KB messages. Targets, interleaved per round:
  (a) postfix  - a private Postfix instance delivering durably into a Maildir;
  (b) null     - a bare aiosmtpd server whose handler only answers 250;
  (c) prostoy  - `prostoy-mail serve`: every message committed to SQLite (synchronous=FULL)
                 and routed against N rules before its 250.
Prints msg/s and MB/s per target and the ratios c/a and c/b per round. Also checks that
prostoy-mail stored every message it acknowledged, exactly once.
"""

from __future__ import annotations

import argparse
import os
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from peers import NullAiosmtpd, PrivatePostfix, free_port, smtp_source, wait_port

DOMAIN = "bench.test"


class ProstoyMail:
    def __init__(self, base: Path, rules: int, smtp_extra: str = "") -> None:
        self.base = base
        self.rules = rules
        self.smtp_extra = smtp_extra or "max_connections_per_ip = 1000\nmax_message_size = 10485760\n"
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.config = base / "prostoy-mail.toml"
        self.cli = str(Path(sys.executable).parent / "prostoy-mail")

    def start(self) -> None:
        self.base.mkdir(parents=True, exist_ok=True)
        lines = [f'[daemon]\ndomain = "{DOMAIN}"\nstore = "store.db"\nhostname = "mx.{DOMAIN}"\n',
                 f'[listen]\nsmtp = "127.0.0.1:{self.port}"\n',
                 "[smtp]\n" + self.smtp_extra,
                 '[[mailboxes]]\nlogin = "box"\n']
        for i in range(self.rules):  # rules that do not match the load: every one is checked
            lines.append(f'[[rules]]\nname = "r{i}"\nsubject = "invoice-{i}, счёт-{i}"\n'
                         f'senders = "@client{i}.ru"\naction = "comment"\ntask = "Bench/Target"\n')
        self.config.write_text("\n".join(lines))
        subprocess.run([self.cli, "--config", str(self.config), "project", "add", "Bench"], check=True,
                       capture_output=True)
        subprocess.run([self.cli, "--config", str(self.config), "task", "add", "Bench", "Target"], check=True,
                       capture_output=True)
        self.proc = subprocess.Popen([self.cli, "--config", str(self.config), "serve", "--log-level", "warning"])
        wait_port(self.port)

    def stored(self) -> tuple[int, int]:
        db = sqlite3.connect(self.base / "store.db")
        try:
            messages = db.execute("SELECT count(*) FROM messages").fetchone()[0]
            distinct = db.execute("SELECT count(DISTINCT sha256) FROM messages").fetchone()[0]
            return int(messages), int(distinct)
        finally:
            db.close()

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(30)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--messages", type=int, default=3000, help="2 KB messages per run (100 KB: a quarter)")
    parser.add_argument("--rules", type=int, default=1000)
    parser.add_argument("--sizes", default="2000,100000")
    parser.add_argument("--sessions", default="10,50")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="pm-bench-"))
    work.chmod(0o755)  # postfix runs as its own user
    postfix = PrivatePostfix(work / "postfix", DOMAIN)
    null = NullAiosmtpd()
    prostoy = ProstoyMail(work / "prostoy", args.rules)
    postfix.start()
    null.start()
    prostoy.start()
    targets = {"postfix": postfix.port, "null": null.port, "prostoy": prostoy.port}
    results: dict[tuple[int, int], dict[str, list[float]]] = {}
    sent_to_prostoy = 0
    print(f"loadavg {os.getloadavg()}; {args.rules} rules; {args.rounds} rounds; one connection per message")
    try:
        for round_number in range(1, args.rounds + 1):
            for size in map(int, args.sizes.split(",")):
                count = args.messages if size < 10_000 else max(200, args.messages // 4)
                for sessions in map(int, args.sessions.split(",")):
                    cell = results.setdefault((size, sessions), {name: [] for name in targets})
                    for name, port in targets.items():
                        seconds = smtp_source(port, messages=count, sessions=sessions, size=size,
                                              to=f"box@{DOMAIN}")
                        cell[name].append(count / seconds)
                        if name == "prostoy":
                            sent_to_prostoy += count
                    r = {n: v[-1] for n, v in cell.items()}
                    print(f"round {round_number} size {size:>6} conc {sessions:>2}: "
                          + "  ".join(f"{n} {v:7.1f} msg/s" for n, v in r.items())
                          + f"  c/a {r['prostoy'] / r['postfix']:.2f}  c/b {r['prostoy'] / r['null']:.2f}",
                          flush=True)
    finally:
        prostoy.stop()
        null.stop()
        postfix.stop()
    stored, distinct = prostoy.stored()
    print()
    print("| size | conc | postfix msg/s | null msg/s | prostoy msg/s | prostoy MB/s | c/a (median [min..max]) "
          "| c/b (median [min..max]) |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for (size, sessions), cell in results.items():
        ca = [c / a for c, a in zip(cell["prostoy"], cell["postfix"], strict=True)]
        cb = [c / b for c, b in zip(cell["prostoy"], cell["null"], strict=True)]
        med = {n: statistics.median(v) for n, v in cell.items()}
        print(f"| {size // 1000} KB | {sessions} | {med['postfix']:.0f} | {med['null']:.0f} | {med['prostoy']:.0f} "
              f"| {med['prostoy'] * size / 1e6:.1f} | {statistics.median(ca):.2f} [{min(ca):.2f}..{max(ca):.2f}] "
              f"| {statistics.median(cb):.2f} [{min(cb):.2f}..{max(cb):.2f}] |")
    print(f"\nprostoy-mail acknowledged {sent_to_prostoy} messages; stored {stored} "
          f"({distinct} distinct): {'OK' if stored == sent_to_prostoy else 'MISMATCH'}")
    return 0 if stored == sent_to_prostoy else 1


if __name__ == "__main__":
    sys.exit(main())
