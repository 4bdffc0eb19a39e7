"""The bounded-memory multipart scanner says what parsing the whole message says."""

from __future__ import annotations

import base64
import io
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from prostoy_mail.mail import mime_scan
from prostoy_mail.mail.parse import parse_message


def _part(kind: str, payload: bytes, name: str, final_newline: bool) -> bytes:
    if kind == "text":
        head = b"Content-Type: text/plain; charset=utf-8\r\n\r\n"
        body = payload.hex().encode()
    elif kind == "base64":
        head = f'Content-Type: application/pdf; name="{name}"\r\nContent-Transfer-Encoding: base64\r\n\r\n'.encode()
        body = base64.encodebytes(payload).replace(b"\n", b"\r\n").rstrip(b"\r\n")
    else:  # 7bit attachment
        head = (f'Content-Type: application/octet-stream\r\n'
                f'Content-Disposition: attachment; filename="{name}"\r\n\r\n').encode()
        body = b"\r\n".join(payload.hex().encode()[i:i + 70] for i in range(0, 2 * len(payload), 70))
    return head + body + (b"\r\n" if final_newline else b"")


_PARTS = st.lists(st.tuples(st.sampled_from(["text", "base64", "7bit"]), st.binary(max_size=300),
                            st.sampled_from(["a.pdf", "скан.pdf", "x"]), st.booleans()), min_size=1, max_size=4)


def _multipart(parts: list[Any], nested: list[Any], boundary: str) -> bytes:
    chunks = [b"This is a multi-part message.\r\n"]
    for kind, payload, name, final_newline in parts:
        chunks.append(f"--{boundary}\r\n".encode() + _part(kind, payload, name, final_newline) + b"\r\n")
    if nested:
        inner = _multipart(nested, [], boundary + "-in")
        nested_head = f'--{boundary}\r\nContent-Type: multipart/alternative; boundary="{boundary}-in"\r\n\r\n'
        chunks.append(nested_head.encode() + inner + b"\r\n")
    chunks.append(f"--{boundary}--\r\n".encode())
    return b"".join(chunks)


@settings(max_examples=300, deadline=None)
@given(_PARTS, st.lists(st.tuples(st.sampled_from(["text", "base64", "7bit"]), st.binary(max_size=300),
                                  st.sampled_from(["b.bin"]), st.booleans()), max_size=3),
       st.sampled_from([8, 64, 100_000]))
def test_the_scanner_says_what_the_whole_parse_says(parts: list[Any], nested: list[Any], keep: int) -> None:
    head = (b"From: Client <client@example.org>\r\nTo: sales@example.test\r\nSubject: scan\r\n"
            b'MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="b1"\r\n\r\n')
    raw = head + _multipart(parts, nested, "b1")
    old_keep = mime_scan.KEEP
    mime_scan.KEEP = keep
    try:
        scanned = mime_scan.scan_multipart(io.BytesIO(raw))
    finally:
        mime_scan.KEEP = old_keep
    if scanned is not None:
        assert scanned == parse_message(raw)
    # well-formed and with something clearly worth leaving out: the scanner must not give up
    texts_small = all(2 * len(p[1]) + 2 < 4 * keep for p in [*parts, *nested] if p[0] == "text")
    if texts_small and any(len(p[1]) > keep for p in [*parts, *nested] if p[0] != "text"):
        assert scanned is not None


def test_a_30_mib_attachment_is_listed_without_holding_it() -> None:
    import tracemalloc

    payload = bytes(range(256)) * (4 * 1024 * 64)  # 16 MiB
    raw = (b"Subject: scan\r\nContent-Type: multipart/mixed; boundary=b1\r\n\r\n--b1\r\n"
           + _part("text", b"hi", "", True) + b"--b1\r\n" + _part("base64", payload, "scan.pdf", True) + b"--b1--\r\n")
    tracemalloc.start()
    scanned = mime_scan.scan_multipart(io.BytesIO(raw))
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert scanned is not None and [(a.filename, a.size) for a in scanned.attachments] == [("scan.pdf", len(payload))]
    assert peak < 2 * 1024 * 1024, peak  # (the whole parse: several times the message)
