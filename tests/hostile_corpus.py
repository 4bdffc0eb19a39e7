"""Hostile and odd messages, generated at test time (no third-party mail is copied in).

Each entry: a name, the raw bytes (CRLF line ends), and the subject a good mail client
shows (None: anything, as long as nothing breaks).
"""

from __future__ import annotations

import base64
import os
from dataclasses import dataclass


@dataclass(frozen=True)
class Case:
    name: str
    raw: bytes
    subject: str | None


def _head(subject: bytes, extra: bytes = b"") -> bytes:
    return b"From: Sender <sender@far.example>\r\nTo: box@hostile.test\r\nSubject: " + subject + b"\r\n" + extra


def nested(depth: int) -> bytes:
    parts = [_head(b"nested", b"MIME-Version: 1.0\r\n")]
    for level in range(depth):
        parts.append(f'Content-Type: multipart/mixed; boundary="b{level}"\r\n\r\n--b{level}\r\n'.encode())
    parts.append(b"Content-Type: text/plain\r\n\r\ndeep inside\r\n")
    for level in reversed(range(depth)):
        parts.append(f"--b{level}--\r\n".encode())
    return b"".join(parts)


def big_attachment(megabytes: int) -> bytes:
    payload = base64.encodebytes(os.urandom(megabytes * 1024 * 1024)).replace(b"\n", b"\r\n")
    return (_head(b"twenty megabytes", b'MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="x"\r\n')
            + b"\r\n--x\r\nContent-Type: text/plain\r\n\r\nsee attached\r\n--x\r\n"
            b'Content-Type: application/octet-stream; name="big.bin"\r\nContent-Transfer-Encoding: base64\r\n'
            b'Content-Disposition: attachment; filename="big.bin"\r\n\r\n' + payload + b"--x--\r\n")


def corpus(big_megabytes: int = 20) -> list[Case]:
    cp1251 = "Счёт на оплату № 5".encode("cp1251")
    koi8 = "Привет из КОИ".encode("koi8-r")
    dsn = (b"From: MAILER-DAEMON@mx.far.example\r\nTo: box@hostile.test\r\nSubject: Undelivered Mail Returned to "
           b"Sender\r\nAuto-Submitted: auto-replied\r\nMIME-Version: 1.0\r\nContent-Type: multipart/report; "
           b'report-type=delivery-status; boundary="r"\r\n\r\n--r\r\nContent-Type: text/plain\r\n\r\nI could not '
           b"deliver it.\r\n--r\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx\r\n\r\n"
           b"Final-Recipient: rfc822; x@y\r\nAction: failed\r\nStatus: 5.1.1\r\n\r\n--r--\r\n")
    return [
        Case("broken encoded-words", _head(b"=?utf-8?B?0J/RgNC4?= =?utf-8?Q?bro=ZZken?= =?x-unknown?q?abc?="
                                           b" =?utf-8?B?!!!?=") + b"\r\nbody\r\n", None),
        Case("raw 8-bit windows-1251", _head(cp1251, b"Content-Type: text/plain; charset=windows-1251\r\n")
             + b"\r\n" + "Оплатите".encode("cp1251") + b"\r\n", "Счёт на оплату № 5"),
        Case("raw 8-bit KOI8-R", _head(koi8) + b"\r\nbody\r\n", "Привет из КОИ"),
        Case("mislabelled charset", _head(b"=?iso-8859-5?B?" + base64.b64encode("Тест".encode()) + b"?=",
                                          b"Content-Type: text/plain; charset=koi8-r\r\n")
             + b"\r\n" + "неправильно".encode("cp1251") + b"\r\n", None),
        Case("no Message-ID", _head(b"no id") + b"\r\nbody\r\n", "no id"),
        Case("two Message-IDs", _head(b"two ids", b"Message-ID: <one@x>\r\nMessage-ID: <two@x>\r\n")
             + b"\r\nbody\r\n", "two ids"),
        Case("NUL bytes", _head(b"nul\x00here") + b"\r\nbody \x00 with NUL\r\n", None),
        Case("long lines", _head(b"long lines") + b"\r\n" + b"w" * 3000 + b"\r\n" + b"v" * 7000 + b"\r\n",
             "long lines"),
        Case("1000-level nesting", nested(1000), "nested"),
        Case("bounce", dsn, "Undelivered Mail Returned to Sender"),
        Case("auto-reply", _head(b"Out of office", b"Auto-Submitted: auto-replied\r\nX-Autoreply: yes\r\n"
                                                  b"Precedence: bulk\r\n") + b"\r\nI am away.\r\n", "Out of office"),
        Case("bad base64 word in a file name (found by the fuzzer)",
             _head(b"named", b'MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="n"\r\n')
             + b'\r\n--n\r\nContent-Type: text/plain\r\nContent-Disposition: attachment; filename="=?utf-8?B?a?="'
             b"\r\n\r\nx\r\n--n--\r\n", "named"),
        Case("20 MB attachment", big_attachment(big_megabytes), "twenty megabytes"),
    ]
