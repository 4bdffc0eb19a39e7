"""The DATA spool: what it writes is what the in-memory reader keeps, however the bytes are cut."""

from __future__ import annotations

import asyncio
import hashlib
import tempfile
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from prostoy_mail.smtp.server import _has_long_line
from prostoy_mail.smtp.spool import DataSpool
from prostoy_mail.store.raw_files import RawFiles

_PIECES = st.sampled_from([b"a", b"xyz", b".", b"..", b"\r\n", b"\r", b"\n", b"\r\n.", b"\r\n..", b".\r\n"])


def _expected(stuffed: bytes) -> bytes:
    """What the in-memory reader keeps: everything up to the end marker, unstuffed."""
    return (b"\r\n" + stuffed).replace(b"\r\n.", b"\r\n")[2:]


def _run(stuffed: bytes, cuts: list[int], size_limit: int = 0, line_limit: int = 10_000) -> DataSpool:
    """Feed `stuffed` and the end marker in pieces cut at `cuts`; what was not fed is kept in
    `spool.unread` (the reader keeps it), with `spool.rest` (fed, but after the end)."""
    folder = Path(tempfile.mkdtemp()) / "files"
    spool = DataSpool(RawFiles(folder), size_limit, line_limit)
    stream = stuffed + b".\r\nQUIT\r\n"
    position = 0
    for cut in [*sorted(set(c % (len(stream) + 1) for c in cuts)), len(stream)]:
        if cut > position:
            spool.feed(stream[position:cut])
            position = cut
        if spool.ended:
            break
    spool.unread = stream[position:]  # type: ignore[attr-defined]
    return spool


@settings(max_examples=400, deadline=None)
@given(st.lists(_PIECES, max_size=60).map(b"".join), st.lists(st.integers(0, 400), max_size=8))
def test_the_file_holds_the_unstuffed_data_and_nothing_after_it(body: bytes, cuts: list[int]) -> None:
    stuffed = body + b"\r\n"  # the data before the end marker ends with its CRLF
    if b"\r\n.\r\n" in b"\r\n" + stuffed:
        return  # an earlier end marker: the client's data would end there
    spool = _run(stuffed, cuts)
    assert spool.ended and spool.rest + spool.unread == b"QUIT\r\n" and spool.problem is None  # type: ignore[attr-defined]
    spooled = asyncio.run(spool.finish())
    assert spooled is not None
    written = (spool_folder(spooled.name, spool)).read_bytes()
    assert written == _expected(stuffed)
    assert (spooled.size, spooled.sha256) == (len(written), hashlib.sha256(written).hexdigest())
    pairs = stuffed.count(b"\r\n")
    assert spool.clean == (stuffed.count(b"\r") == pairs and stuffed.count(b"\n") == pairs)


def spool_folder(name: str, spool: DataSpool) -> Path:
    return Path(spool.files_folder) / name


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 40), st.lists(st.integers(0, 400), max_size=6))
def test_a_long_line_is_found_wherever_the_chunks_are_cut(length: int, cuts: list[int]) -> None:
    stuffed = b"ok\r\n" + b"y" * length + b"\r\nend\r\n"
    spool = _run(stuffed, cuts, line_limit=20)
    too_long = length + 2 > 20
    assert spool.problem == ("500 Line too long (see RFC5321 4.5.3.1.6)" if too_long else None)
    assert spool.ended
    if too_long:  # nothing kept
        assert not any(Path(spool.files_folder).iterdir())


def test_too_much_data_keeps_nothing() -> None:
    spool = _run(b"z" * 50 + b"\r\n" + b"w" * 50 + b"\r\n", [7, 60], size_limit=80)
    assert spool.problem == "552 Error: Too much mail data" and spool.ended
    assert not any(Path(spool.files_folder).iterdir())


def _longest_line(raw: bytes) -> int:
    """The plain definition: lines split at CRLF, each counted with its CRLF."""
    return max(len(line) + 2 for line in raw.split(b"\r\n"))


@settings(max_examples=400, deadline=None)
@given(st.lists(st.tuples(st.one_of(st.integers(0, 4), st.integers(0, 50)),
                          st.sampled_from([b"\r\n", b"\n", b"\r", b""])), max_size=12),
       st.integers(3, 25))
def test_the_long_line_check_measures_every_line(lines: list[tuple[int, bytes]], limit: int) -> None:
    # the sampled check (a few searches around positions `limit - 1` apart) against measuring each line
    raw = b"".join(b"x" * length + end for length, end in lines)
    assert _has_long_line(raw, limit) == (_longest_line(raw) > limit)
