"""Memory of the SMTP listener: idle sessions and one big message, against bare aiosmtpd.

    .venv/bin/python bench/smtp_memory.py [--sessions 1000] [--big-mib 30] [--multipart]

For prostoy-mail (`serve`, durable store) and for a bare aiosmtpd server in the same run:
RSS (of the process and its children: prostoy-mail's SMTP workers) after start, with N idle
sessions (connected, greeted, EHLO'd), and the growth of the peak RSS while one message of
--big-mib MiB arrives (sampled every 2 ms; also the per-process VmHWM growth added up).
"""

from __future__ import annotations

import argparse
import resource
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from peers import NullAiosmtpd
from smtp_accept import DOMAIN, ProstoyMail


def status(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM in MiB, summed over the process and its children (prostoy-mail's SMTP
    workers; shared pages count once per process, so this is an upper bound). The sum of the
    VmHWMs adds peaks that may have come at different times: RSS is also sampled while the big
    message arrives and is parsed."""
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    fields = {"VmRSS": 0, "VmHWM": 0}
    for process in (pid, *map(int, children)):
        for line in Path(f"/proc/{process}/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in fields:
                fields[key] += int(value.split()[0])
    return {key: kib // 1024 for key, kib in fields.items()}


def idle_sessions(port: int, count: int) -> list[socket.socket]:
    sessions = []
    for _ in range(count):
        s = socket.create_connection(("127.0.0.1", port))
        s.recv(1024)
        s.sendall(b"EHLO bench\r\n")
        s.recv(4096)
        sessions.append(s)
    return sessions


def big_message(port: int, mib: int, multipart: bool = False) -> None:
    """A `mib` MiB message: lines of text, or (multipart) a short text and a base64 attachment."""
    line = b"x" * 998 + b"\r\n"
    head = b"Subject: big\r\n\r\n"
    if multipart:
        line = b"QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVphYmNkZWZnaGlqa2xtbm9wcXJzdHV2d3h5ejAxMjM0NTY3\r\n"
        head = (b"Subject: scan\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b1\r\n\r\n"
                b"--b1\r\nContent-Type: text/plain\r\n\r\nsee the scan\r\n--b1\r\n"
                b"Content-Type: application/pdf; name=scan.pdf\r\nContent-Transfer-Encoding: base64\r\n\r\n")
    with socket.create_connection(("127.0.0.1", port)) as s:
        f = s.makefile("rwb")
        f.readline()
        for command in (b"EHLO bench", b"MAIL FROM:<a@source.test>", f"RCPT TO:<box@{DOMAIN}>".encode(), b"DATA"):
            f.write(command + b"\r\n")
            f.flush()
            while True:
                reply = f.readline()
                if reply[3:4] != b"-":
                    break
        f.write(head)
        for _ in range(mib * 1024 * 1024 // len(line)):
            f.write(line)
        f.write(b"--b1--\r\n.\r\n" if multipart else b".\r\n")
        f.flush()
        reply = f.readline()
        assert reply.startswith(b"250"), reply


def measure(name: str, pid: int, port: int, sessions: int, mib: int, multipart: bool) -> dict[str, int]:
    time.sleep(0.5)
    start = status(pid)["VmRSS"]
    open_sessions = idle_sessions(port, sessions)
    time.sleep(0.5)
    with_sessions = status(pid)["VmRSS"]
    for s in open_sessions:
        s.close()
    time.sleep(0.5)
    before = status(pid)
    peak = [before["VmRSS"]]
    sampling = threading.Event()

    def sample() -> None:  # the processes' RSS added up, every 2 ms: their peaks together, not one by one
        while not sampling.is_set():
            peak[0] = max(peak[0], status(pid)["VmRSS"])
            time.sleep(0.002)

    sampler = threading.Thread(target=sample)
    sampler.start()
    big_message(port, mib, multipart)
    time.sleep(0.2)
    sampling.set()
    sampler.join()
    after = status(pid)
    result = {"start": start, "sessions": with_sessions - start, "big_peak_growth": peak[0] - before["VmRSS"],
              "hwm_growth": after["VmHWM"] - before["VmHWM"], "rss_after_big": after["VmRSS"]}
    print(f"{name:8} RSS at start {start} MiB; +{result['sessions']} MiB with {sessions} idle sessions "
          f"({result['sessions'] * 1024 / sessions:.1f} KiB each); RSS peaked +{result['big_peak_growth']} MiB "
          f"(per-process peaks added up: +{result['hwm_growth']} MiB) "
          f"for a {mib} MiB {'multipart message (base64 attachment)' if multipart else 'message'}", flush=True)
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sessions", type=int, default=1000)
    parser.add_argument("--big-mib", type=int, default=30)
    parser.add_argument("--multipart", action="store_true",
                        help="the big message is multipart with a base64 attachment (parsed whole to list it)")
    args = parser.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, 4 * args.sessions)), hard))

    work = Path(tempfile.mkdtemp(prefix="pm-mem-"))
    prostoy = ProstoyMail(work, rules=10, smtp_extra=(
        f"max_connections_per_ip = {2 * args.sessions}\nmax_connections = {2 * args.sessions}\n"
        f"max_message_size = {(args.big_mib + 5) * 1024 * 1024}\n"))
    null = NullAiosmtpd(data_size_limit=(args.big_mib + 5) * 1024 * 1024)
    prostoy.start()
    null.start()
    try:
        assert prostoy.proc is not None and null.proc is not None
        ours = measure("prostoy", prostoy.proc.pid, prostoy.port, args.sessions, args.big_mib, args.multipart)
        base = measure("null", null.proc.pid, null.port, args.sessions, args.big_mib, args.multipart)
    finally:
        prostoy.stop()
        null.stop()
    print(f"\nidle sessions: prostoy {ours['sessions']} MiB vs null {base['sessions']} MiB; "
          f"{args.big_mib} MiB message: RSS peak +{ours['big_peak_growth']} MiB vs +{base['big_peak_growth']} MiB "
          f"({ours['big_peak_growth'] / max(1, base['big_peak_growth']):.2f}x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
