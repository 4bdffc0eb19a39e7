"""IMAP logins per second, with the verified-password cache and without it, in one run.

    .venv/bin/python bench/logins.py [--logins 40]

A `prostoy-mail serve` process with an IMAP listener (STARTTLS, a self-signed certificate)
and one user; a client logs in and out `--logins` times in a row, first with
`[auth] verified_cache_seconds = 0` (every login verified by Argon2: the baseline), then
with the default (the first login verified, the rest recognised). Prints logins/s and the
daemon's CPU seconds per login for each, and the ratio.
"""

from __future__ import annotations

import argparse
import imaplib
import os
import signal
import ssl
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.peers import free_port, wait_port
from tests.config_factory import config_text

CLI = str(Path(sys.executable).parent / "prostoy-mail")


def run(config: Path, *args: str, stdin: str = "") -> None:
    subprocess.run([CLI, "--config", str(config), *args], check=True, capture_output=True, text=True, input=stdin)


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure(work: Path, logins: int, cache: float) -> tuple[float, float]:
    work.mkdir()
    port = free_port()
    config = work / "prostoy-mail.toml"
    config.write_text(config_text(listen={"imap": f"127.0.0.1:{port}"}, tls={"cert": "cert.pem", "key": "key.pem"},
                                  auth={"verified_cache_seconds": cache}))
    run(config, "tls", "self-signed")
    run(config, "user", "add", "ivanov", "--password-file", "-", stdin="s3cret\n")
    daemon = subprocess.Popen([CLI, "--config", str(config), "serve", "--log-level", "warning"])
    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    try:
        wait_port(port)
        cpu_before, started = cpu_seconds(daemon.pid), time.monotonic()
        for _ in range(logins):
            client = imaplib.IMAP4("127.0.0.1", port, timeout=30)
            client.starttls(context)
            client.login("ivanov", "s3cret")
            client.logout()
        took, cpu = time.monotonic() - started, cpu_seconds(daemon.pid) - cpu_before
    finally:
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(30)
    return logins / took, cpu / logins


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--logins", type=int, default=40)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="pm-logins-"))
    print(f"loadavg {os.getloadavg()}; {args.logins} logins in a row, STARTTLS each", flush=True)
    base_rate, base_cpu = measure(work / "argon2", args.logins, 0)
    rate, cpu = measure(work / "cached", args.logins, 600)
    print(f"every login verified (verified_cache_seconds = 0): {base_rate:.1f} logins/s, {base_cpu * 1000:.0f} ms "
          "of the daemon's CPU per login")
    print(f"verified once, then recognised (the default):      {rate:.1f} logins/s, {cpu * 1000:.0f} ms "
          "of the daemon's CPU per login")
    print(f"ratio: {rate / base_rate:.1f}x logins/s, {base_cpu / max(cpu, 1e-9):.1f}x less CPU per login")
    return 0


if __name__ == "__main__":
    sys.exit(main())
