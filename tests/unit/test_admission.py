"""Connection counts: one process's, and the table the SMTP worker processes share."""

from __future__ import annotations

import os
import random
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

from prostoy_mail.config.model import SmtpLimits
from prostoy_mail.smtp.admission import LocalCounts, SharedCounts

LIMITS = replace(SmtpLimits(), max_connections=1000, max_connections_per_ip=3)


def test_local_counts_bound_the_total_and_each_address() -> None:
    counts = LocalCounts()
    limits = replace(LIMITS, max_connections=4)
    assert [counts.take("10.0.0.1", limits) for _ in range(4)] == [None, None, None, "per_address_limit"]
    assert counts.take("10.0.0.2", limits) is None
    assert counts.take("10.0.0.3", limits) == "total_limit"
    counts.give_back("10.0.0.1")
    assert counts.take("10.0.0.1", limits) is None


def test_every_worker_counts_against_the_same_limits() -> None:
    table = SharedCounts.create(3)
    try:
        first, second = SharedCounts(table.fd, 3, 0), SharedCounts(table.fd, 3, 1)
        assert first.take("10.0.0.1", LIMITS) is None
        assert second.take("10.0.0.1", LIMITS) is None
        assert second.take("10.0.0.1", LIMITS) is None
        assert first.take("10.0.0.1", LIMITS) == "per_address_limit"  # 1 here + 2 in the other worker
        assert first.take("2001:db8::1", LIMITS) is None  # another address is not affected
        assert second.take("2001:db8::1", replace(LIMITS, max_connections=4)) == "total_limit"
        second.give_back("10.0.0.1")
        assert first.take("10.0.0.1", LIMITS) is None
        assert [table.connections(slot) for slot in range(3)] == [3, 1, 0]
        table.clear(1)  # the second worker died: its connections with it
        assert table.connections(1) == 0
        assert first.take("10.0.0.1", LIMITS) is None  # 3 of its own now
        assert first.take("10.0.0.1", LIMITS) == "per_address_limit"
    finally:
        table.close()


def test_the_table_matches_a_plain_count_through_random_opens_and_closes() -> None:
    """Entries are kept packed (a freed one takes the last one's place): what one worker sees of
    another's region must stay right through any order of opening and closing."""
    rng = random.Random(7)
    table = SharedCounts.create(2)
    try:
        writer, reader = SharedCounts(table.fd, 2, 0), SharedCounts(table.fd, 2, 1)
        limits = replace(LIMITS, max_connections=10_000, max_connections_per_ip=10_000)
        model: dict[str, int] = {}
        addresses = [f"192.0.2.{i}" for i in range(40)] + [f"2001:db8::{i:x}" for i in range(40)]
        for _ in range(3000):
            ip = rng.choice(addresses)
            if model.get(ip) and rng.random() < 0.5:
                writer.give_back(ip)
                model[ip] -= 1
            else:
                assert writer.take(ip, limits) is None
                model[ip] = model.get(ip, 0) + 1
            probe = rng.choice(addresses)
            # the reader's view of the writer's region: at the limit exactly when the model says so
            at = replace(limits, max_connections_per_ip=model.get(probe, 0) or 1)
            expected = "per_address_limit" if model.get(probe, 0) else None
            assert reader.take(probe, at) == expected, (probe, model.get(probe))
            if expected is None:
                reader.give_back(probe)
        assert table.connections(0) == sum(model.values())
    finally:
        table.close()


WORKER = """
import sys
from dataclasses import replace
from prostoy_mail.config.model import SmtpLimits
from prostoy_mail.smtp.admission import SharedCounts
fd, slot = int(sys.argv[1]), int(sys.argv[2])
counts = SharedCounts(fd, 4, slot)
limits = replace(SmtpLimits(), max_connections=100_000, max_connections_per_ip=1)
print("ready", flush=True)
sys.stdin.readline()  # all start together
print(sum(counts.take(f"10.0.{i // 250}.{i % 250}", limits) is None for i in range(2000)))
"""


def test_processes_taking_the_last_places_at_once_never_exceed_the_limit() -> None:
    """Four processes race for the one place of each of 2,000 addresses: each is granted once."""
    table = SharedCounts.create(4)
    package = str(Path(__file__).resolve().parents[2] / "daemon")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in (package, os.environ.get("PYTHONPATH")) if p))
    try:
        processes = [subprocess.Popen([sys.executable, "-c", WORKER, str(table.fd), str(slot)], pass_fds=(table.fd,),
                                      stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
                     for slot in range(4)]
        for process in processes:
            assert process.stdout is not None
            assert process.stdout.readline() == "ready\n"
        for process in processes:
            assert process.stdin is not None
            process.stdin.write("go\n")
            process.stdin.flush()
        granted = [int(process.communicate(timeout=60)[0]) for process in processes]
        assert sum(granted) == 2000
        assert sum(table.connections(slot) for slot in range(4)) == 2000
    finally:
        table.close()
