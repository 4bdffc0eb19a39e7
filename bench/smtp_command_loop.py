"""What an SMTP session costs before any message is stored: aiosmtpd against a bare protocol.

    .venv/bin/python bench/smtp_command_loop.py [--rounds 3] [--messages 4000]

Three servers whose only job is to answer the dialogue (EHLO, MAIL, RCPT, DATA, 250, QUIT),
each in its own process, loaded in turn by smtp-source (one connection per 2 KB message, 10
and 50 sessions), in the same run:
  (a) aiosmtpd     - stock aiosmtpd on asyncio's loop (as the issue's "bare aiosmtpd");
  (b) ours         - the session class the SMTP workers run (smtp/server.py: aiosmtpd with its
                     DATA reading, per-connection set-up and replies trimmed) on uvloop;
  (c) protocol     - a bare asyncio.Protocol state machine on uvloop: no streams, no coroutine
                     per command. Not a server (no limits, no checks): the floor of the
                     dialogue's cost in Python.
Prints msg/s and the server's CPU per message (user and system, from /proc) per round, and
the medians. The gap between (b) and (c) is what aiosmtpd's command loop still costs us.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from peers import NullAiosmtpd, free_port, smtp_source, wait_port

OURS = """
import asyncio, sys, uvloop
from prostoy_mail.config.model import SmtpLimits
from prostoy_mail.smtp.server import BoundedSMTP
class Null:
    async def handle_DATA(self, server, session, envelope):
        return "250 OK"
async def main():
    loop = asyncio.get_running_loop()
    limits = SmtpLimits()
    make = lambda: BoundedSMTP(Null(), limits, lambda: None, hostname="null.test", loop=loop)
    server = await loop.create_server(make, "127.0.0.1", int(sys.argv[1]))
    await server.serve_forever()
uvloop.run(main())
"""

PROTOCOL = """
import asyncio, sys, uvloop
class Dialogue(asyncio.Protocol):
    def connection_made(self, transport):
        self.transport, self.lines, self.data = transport, b"", None
        transport.write(b"220 null.test ESMTP\\r\\n")
    def data_received(self, chunk):
        if self.data is not None:  # in DATA: up to <CRLF>.<CRLF>
            self.data += chunk
            end = self.data.find(b"\\r\\n.\\r\\n")
            if end < 0:
                return
            chunk, self.data = bytes(self.data[end + 5:]), None
            self.transport.write(b"250 2.0.0 OK\\r\\n")
        self.lines += chunk
        while (end := self.lines.find(b"\\r\\n")) >= 0:
            command, self.lines = self.lines[:4].upper(), self.lines[end + 2:]
            if command == b"EHLO":
                self.transport.write(b"250-null.test\\r\\n250-SIZE 33554432\\r\\n250-8BITMIME\\r\\n250 SMTPUTF8\\r\\n")
            elif command == b"DATA":
                self.transport.write(b"354 End data with <CR><LF>.<CR><LF>\\r\\n")
                self.data, rest, self.lines = bytearray(b"\\r\\n"), self.lines, b""
                return self.data_received(rest)
            elif command == b"QUIT":
                self.transport.write(b"221 Bye\\r\\n")
                self.transport.close()
                return
            else:
                self.transport.write(b"250 OK\\r\\n")
async def main():
    server = await asyncio.get_running_loop().create_server(Dialogue, "127.0.0.1", int(sys.argv[1]))
    await server.serve_forever()
uvloop.run(main())
"""


def cpu_ms(pid: int) -> tuple[float, float]:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) * 1000 / tick, int(fields[12]) * 1000 / tick


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--messages", type=int, default=4000)
    args = parser.parse_args()
    daemon = str(Path(__file__).resolve().parents[1] / "daemon")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in (daemon, os.environ.get("PYTHONPATH")) if p))
    stock = NullAiosmtpd()
    stock.start()
    assert stock.proc is not None
    servers: dict[str, tuple[int, subprocess.Popen[bytes]]] = {"aiosmtpd": (stock.port, stock.proc)}
    for name, code in (("ours", OURS), ("protocol", PROTOCOL)):
        port = free_port()
        servers[name] = (port, subprocess.Popen([sys.executable, "-c", code, str(port)], env=env))
        wait_port(port)
    rates: dict[tuple[str, int], list[float]] = {}
    cpu: dict[tuple[str, int], list[float]] = {}
    print(f"loadavg {os.getloadavg()}; {args.messages} messages of 2 KB per run, one connection each")
    try:
        for port, _ in servers.values():  # warm-up
            smtp_source(port, messages=300, sessions=10, size=2000, to="box@null.test")
        for round_number in range(1, args.rounds + 1):
            for sessions in (10, 50):
                line = []
                for name, (port, proc) in servers.items():
                    user0, sys0 = cpu_ms(proc.pid)
                    seconds = smtp_source(port, messages=args.messages, sessions=sessions, size=2000,
                                          to="box@null.test")
                    user1, sys1 = cpu_ms(proc.pid)
                    rates.setdefault((name, sessions), []).append(args.messages / seconds)
                    per_message = (user1 - user0 + sys1 - sys0) / args.messages
                    cpu.setdefault((name, sessions), []).append(per_message)
                    line.append(f"{name} {args.messages / seconds:6.0f} msg/s "
                                f"{(user1 - user0) / args.messages:.3f}+{(sys1 - sys0) / args.messages:.3f} ms")
                print(f"round {round_number} conc {sessions:>2}: " + "   ".join(line), flush=True)
    finally:
        for _, proc in servers.values():
            proc.terminate()
            proc.wait(10)
    print("\n| conc | server | msg/s | CPU ms/msg (user+sys) | CPU vs protocol |")
    print("| --- | --- | --- | --- | --- |")
    for sessions in (10, 50):
        floor = statistics.median(cpu[("protocol", sessions)])
        for name in servers:
            median_cpu = statistics.median(cpu[(name, sessions)])
            print(f"| {sessions} | {name} | {statistics.median(rates[(name, sessions)]):.0f} | {median_cpu:.3f} "
                  f"| {median_cpu / floor:.1f}x |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
