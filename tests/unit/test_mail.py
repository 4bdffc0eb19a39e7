"""Decoding of messages as a good mail client shows them, bounded on hostile structure."""

from __future__ import annotations

import base64
import dataclasses
import email.header
import pickle
from email.parser import BytesHeaderParser
from email.policy import compat32

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from prostoy_mail.delivery import Delivery
from prostoy_mail.mail.addresses import Recipient, Refused, classify_recipient
from prostoy_mail.mail.header_block import read_header_block
from prostoy_mail.mail.headers import decode_header_value
from prostoy_mail.mail.line_ends import SmuggledMessage, has_bare_line_ends, normalise_line_ends
from prostoy_mail.mail.parse import parse_message
from prostoy_mail.mail.tokens import TaskTokens
from prostoy_mail.store.raw_files import SpooledRaw


def encoded(text: str, charset: str, kind: str = "b") -> str:
    return email.header.Header(text, charset).encode() if kind == "b" else \
        "=?{}?q?{}?=".format(charset, "".join(f"={b:02X}" for b in text.encode(charset)))


@pytest.mark.parametrize(
    ("raw_subject", "shown"),
    [
        (encoded("Счёт на оплату", "utf-8").encode(), "Счёт на оплату"),
        (encoded("Счёт на оплату", "koi8-r").encode(), "Счёт на оплату"),
        (encoded("Привет", "windows-1251", "q").encode(), "Привет"),
        # adjacent encoded words are joined without the space between them
        (b"=?utf-8?b?0J/RgNC4?= =?utf-8?b?0LLQtdGC?=", "Привет"),
        # raw 8-bit headers, as Russian mail often has them
        ("Привет из 1251".encode("cp1251"), "Привет из 1251"),
        ("Привет из КОИ".encode("koi8-r"), "Привет из КОИ"),
        ("Привет в UTF-8".encode(), "Привет в UTF-8"),
        ("СЧЁТ НА ОПЛАТУ".encode("koi8-r"), "СЧЁТ НА ОПЛАТУ"),  # all capitals, too
        ("СЧЁТ НА ОПЛАТУ".encode("cp1251"), "СЧЁТ НА ОПЛАТУ"),
        ("Счёт".encode("koi8-r"), "Счёт"),
        ("Re: отчёт за май".encode("cp1251"), "Re: отчёт за май"),
        # broken ones never raise
        (b"=?x-unknown?q?abc?=", "abc"),
        (b"=?utf-8?b?/w==?= ok", "\ufffd ok"),
        (b"plain ascii", "plain ascii"),
    ],
)
def test_subjects_are_decoded(raw_subject: bytes, shown: str) -> None:
    parsed = parse_message(b"Subject: " + raw_subject + b"\r\nFrom: a@b.ru\r\n\r\nbody\r\n")
    assert parsed.subject == shown


def test_a_decoded_header_never_becomes_a_header() -> None:
    evil = base64.b64encode(b"hello\r\nBcc: victim@example.org").decode()
    raw = f"Subject: =?utf-8?b?{evil}?=\r\nFrom: a@b.ru\r\n\r\nbody\r\n".encode()
    parsed = parse_message(raw)
    assert "\n" not in parsed.subject and "\r" not in parsed.subject
    assert parsed.subject == "hello  Bcc: victim@example.org"


def test_names_and_addresses() -> None:
    raw = ("From: =?koi8-r?b?" + base64.b64encode("Иван Петров".encode("koi8-r")).decode()
           + "?= <Ivan@Client.RU>\r\nTo: a@x.ru, \"Б\" <B@X.RU>\r\nCc: c@x.ru\r\n"
           "In-Reply-To: <one@x>\r\nReferences: <zero@x> <one@x>\r\nMessage-ID: <me@x>\r\n\r\nbody\r\n").encode()
    parsed = parse_message(raw)
    assert (parsed.from_name, parsed.from_addr) == ("Иван Петров", "ivan@client.ru")
    assert parsed.to == ("a@x.ru", "b@x.ru") and parsed.cc == ("c@x.ru",)
    assert parsed.in_reply_to == ("one@x",) and parsed.references == ("zero@x", "one@x")
    assert parsed.message_id == "me@x"


ATTACHMENTS = b"""\
From: a@b.ru\r
Subject: files\r
MIME-Version: 1.0\r
Content-Type: multipart/mixed; boundary="XX"\r
\r
--XX\r
Content-Type: multipart/alternative; boundary="YY"\r
\r
--YY\r
Content-Type: text/html; charset=windows-1251\r
Content-Transfer-Encoding: 8bit\r
\r
<html><head><style>p {color: red}</style></head><body><p>\xc4\xee\xe1\xf0\xfb\xe9 \xe4\xe5\xed\xfc</p><p>see <a href="https://x.ru/a">this</a></p></body></html>\r
--YY--\r
--XX\r
Content-Type: application/pdf; name="=?utf-8?b?0KHRh9GR0YIucGRm?="\r
Content-Disposition: attachment; filename="=?utf-8?b?0KHRh9GR0YIucGRm?="\r
Content-Transfer-Encoding: base64\r
\r
JVBERi0xLjQK\r
--XX\r
Content-Type: text/plain\r
Content-Disposition: attachment; filename*=utf-8''%D0%B0%D0%BA%D1%82.txt\r
\r
act\r
--XX--\r
"""


def test_html_body_becomes_text_and_attachments_are_listed() -> None:
    parsed = parse_message(ATTACHMENTS)
    assert parsed.text == "Добрый день\n\nsee this <https://x.ru/a>"
    assert [(a.filename, a.content_type, a.size) for a in parsed.attachments] == [
        ("Счёт.pdf", "application/pdf", 9), ("акт.txt", "text/plain", 3)]


def test_plain_text_is_preferred_over_html() -> None:
    raw = (b"Content-Type: multipart/alternative; boundary=B\r\n\r\n--B\r\nContent-Type: text/plain; charset=koi8-r\r\n"
           b"\r\n" + "Текст".encode("koi8-r") + b"\r\n--B\r\nContent-Type: text/html\r\n\r\n<b>HTML</b>\r\n--B--\r\n")
    assert parse_message(raw).text == "Текст"


@pytest.mark.parametrize(
    ("headers", "mail_from", "bounce", "auto_reply"),
    [
        (b"From: a@b.ru\r\n", "a@b.ru", False, False),
        (b"From: MAILER-DAEMON@b.ru\r\n", "", True, False),
        (b"Content-Type: multipart/report; report-type=delivery-status; boundary=x\r\n", "x@y.ru", True, False),
        (b"Auto-Submitted: auto-replied\r\n", "a@b.ru", False, True),
        (b"Auto-Submitted: no\r\n", "a@b.ru", False, False),
        (b"Precedence: bulk\r\n", "a@b.ru", False, True),
        (b"X-Autoreply: yes\r\n", "a@b.ru", False, True),
    ],
)
def test_bounces_and_auto_replies_are_marked(headers: bytes, mail_from: str, bounce: bool, auto_reply: bool) -> None:
    parsed = parse_message(headers + b"Subject: x\r\n\r\nbody\r\n", mail_from)
    assert (parsed.bounce, parsed.auto_reply) == (bounce, auto_reply)


def test_deeply_nested_mime_does_not_crash() -> None:
    depth = 1000
    head = b"".join(b"Content-Type: multipart/mixed; boundary=b%d\r\n\r\n--b%d\r\n" % (i, i) for i in range(depth))
    tail = b"".join(b"\r\n--b%d--\r\n" % i for i in reversed(range(depth)))
    raw = b"Subject: deep\r\n" + head + b"Content-Type: text/plain\r\n\r\ninnermost\r\n" + tail
    parsed = parse_message(raw)
    assert parsed.subject == "deep"  # the headers are always there; deep parts are not descended into


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=2000))
def test_any_bytes_parse_without_an_exception(raw: bytes) -> None:
    parsed = parse_message(raw)
    assert isinstance(parsed.subject, str) and isinstance(parsed.text, str)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200))
def test_any_header_text_decodes_to_one_line(value: str) -> None:
    shown = decode_header_value(value)
    assert "\n" not in shown and "\r" not in shown


def test_tokens_round_trip_and_forgeries_fail() -> None:
    tokens = TaskTokens(b"k" * 32)
    message_id = tokens.message_id(42, "mx.example.test")
    assert message_id.endswith("@mx.example.test") and tokens.task_of_message_id(message_id) == 42
    forged = message_id.replace("pm.42.", "pm.43.")
    assert tokens.task_of_message_id(forged) is None
    assert TaskTokens(b"other key" * 4).task_of_message_id(message_id) is None
    address = tokens.reply_address("sales", 42, "example.test")
    token = address.split("+")[1].split("@")[0]
    assert tokens.task_of_address_token("sales", token) == 42
    assert tokens.task_of_address_token("info", token) is None  # bound to the mailbox
    assert tokens.task_of_address_token("sales", token.upper()) == 42  # addresses ignore case
    assert tokens.task_of_address_token("sales", "t43." + token.split(".")[1]) is None


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"a\r\nb\r\n", b"a\r\nb\r\n"),
        (b"a\nb\n", b"a\r\nb\r\n"),
        (b"a\rb\r\n", b"a\r\nb\r\n"),
        (b"a\r\n.\r\nb\r\n", b"a\r\n.\r\nb\r\n"),  # an unstuffed ".." line stays
    ],
)
def test_line_ends_are_normalised(data: bytes, expected: bytes) -> None:
    assert normalise_line_ends(data) == expected


@pytest.mark.parametrize("data", [b"a\n.\nb", b"a\r.\rb", b"a\r\n.\nb", b".\nb", b"a\n.\r\nb"])
def test_smuggled_end_of_data_is_refused(data: bytes) -> None:
    with pytest.raises(SmuggledMessage):
        normalise_line_ends(data)


def test_recipients() -> None:
    boxes = {"sales", "info"}
    r = classify_recipient("Sales+T42.abc@Example.Test", "example.test", boxes)
    assert (r.login, r.token) == ("sales", "t42.abc")
    for address, code in [("x@example.test", "550 5.1.1"), ("sales@other.test", "554 5.7.1"),
                          ("a%b@example.test", "550 5.7.1"), ("b!a@example.test", "550 5.7.1"),
                          ('"a@b"@example.test', "550 5.7.1"), ("@example.test:a@b.c", "550 5.7.1"),
                          ("no-at-sign", "501 5.1.3")]:
        with pytest.raises(Refused) as err:
            classify_recipient(address, "example.test", boxes)
        assert err.value.reply.startswith(code), (address, err.value.reply)


@settings(max_examples=200, deadline=None)
@given(
    body=st.text(max_size=300),
    charset=st.sampled_from(["utf-8", "koi8-r", "windows-1251", "us-ascii"]),
    encoding=st.sampled_from(["7bit", "8bit", "base64", "quoted-printable"]),
    subtype=st.sampled_from(["plain", "html", "calendar"]),
)
def test_the_single_part_fast_path_reads_what_the_full_parser_reads(body: str, charset: str, encoding: str,
                                                                    subtype: str) -> None:
    import quopri
    from email import message_from_bytes

    from prostoy_mail.mail import parse as parse_module

    data = body.replace("\r", "").replace("\n", "\r\n").encode(charset, "replace")
    payload = {"base64": lambda d: base64.encodebytes(d).replace(b"\n", b"\r\n"),
               "quoted-printable": lambda d: quopri.encodestring(d).replace(b"\n", b"\r\n")}.get(
        encoding, lambda d: d)(data)
    raw = (f"Subject: t\r\nContent-Type: text/{subtype}; charset={charset}\r\n"
           f"Content-Transfer-Encoding: {encoding}\r\n\r\n").encode() + payload
    fast = parse_module._body(parse_module._parse(raw, parse_module.MAX_BODY))
    full = parse_module._body(message_from_bytes(raw))
    assert fast == full


@pytest.mark.parametrize("encoding", ["8bit", "base64", "quoted-printable"])
def test_a_huge_text_body_is_read_only_as_far_as_the_comment_shows(encoding: str) -> None:
    import quopri
    from email import message_from_bytes

    from prostoy_mail.mail import parse as parse_module

    text = "".join(f"Строка номер {i}: съешь же ещё этих мягких французских булок.\r\n" for i in range(40_000))
    data = text.encode("utf-8")
    payload = {"base64": lambda d: base64.encodebytes(d).replace(b"\n", b"\r\n"),
               "quoted-printable": lambda d: quopri.encodestring(d).replace(b"\n", b"\r\n")}.get(encoding, lambda d: d)
    raw = (f"Subject: big\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: {encoding}"
           "\r\n\r\n").encode() + payload(data)
    assert len(raw) > 4 * parse_module.MAX_BODY
    fast = parse_module.parse_message(raw).text
    full, _ = parse_module._body(message_from_bytes(raw))
    assert len(fast) == parse_module.MAX_TEXT and fast == full


_CHARSETS = st.sampled_from(["utf-8", "windows-1251", "koi8-r", "iso-8859-5", "x-unknown", "us-ascii", ""])
_ENCODINGS = st.sampled_from(["7bit", "8bit", "base64", "quoted-printable", "x-garbage", ""])
_TEXT = st.lists(st.sampled_from([*list("abcАБВёЁ=?_ \t\r\n\x00<>\"'@"), "=?utf-8?B?", "=?koi8-r?Q?", "?="]),
                 max_size=30).map("".join)


def _part(body: str, charset: str, encoding: str, name: str) -> bytes:
    head = f"Content-Type: text/plain{f'; charset={charset}' if charset else ''}\r\n"
    head += f"Content-Transfer-Encoding: {encoding}\r\n" if encoding else ""
    head += f'Content-Disposition: attachment; filename="{name}"\r\n' if name else ""
    data = body.encode(charset if charset in ("utf-8", "windows-1251", "koi8-r") else "utf-8", "replace")
    return head.encode("utf-8", "surrogateescape") + b"\r\n" + data


_PARTS = st.recursive(
    st.builds(_part, _TEXT, _CHARSETS, _ENCODINGS, _TEXT),
    lambda children: st.builds(
        lambda kids, boundary: (f'Content-Type: multipart/mixed; boundary="{boundary}"\r\n\r\n'.encode()
                                + b"".join(f"--{boundary}\r\n".encode() + kid + b"\r\n" for kid in kids)
                                + f"--{boundary}--\r\n".encode()),
        st.lists(children, max_size=4), st.sampled_from(["a", "b", "=_x", "", "a b"])),
    max_leaves=12)


@settings(max_examples=300, deadline=None)
@given(subject=_TEXT, sender=_TEXT, body=_PARTS)
def test_any_mime_structure_decodes_without_an_exception(subject: str, sender: str, body: bytes) -> None:
    """The fuzzing target over MIME decoding: random trees of parts, charsets (real, unknown,
    mislabelled), transfer encodings (also broken) and encoded words."""
    raw = (f"From: {sender}\r\nSubject: {subject}\r\nMIME-Version: 1.0\r\n".encode("utf-8", "surrogateescape")
           + body)
    parsed = parse_message(raw)
    assert isinstance(parsed.subject, str) and "\n" not in parsed.subject
    assert isinstance(parsed.text, str)
    assert all(isinstance(a.filename, str) and a.size >= 0 for a in parsed.attachments)


def test_a_parser_failure_still_yields_a_message(monkeypatch: pytest.MonkeyPatch) -> None:
    """An unforeseen parser error is not an endless 451 or a quarantine: the message is kept raw."""
    import prostoy_mail.mail.parse as parse_module

    def broken(msg: object) -> None:
        raise RuntimeError("a bug nobody foresaw")

    monkeypatch.setattr(parse_module, "_body", broken)
    parsed = parse_module.parse_message(b"Subject: x\r\n\r\nbody\r\n", "")
    assert parsed.subject == "(a message that could not be read)" and parsed.bounce


# --- addresses come from the header's syntax, never from decoded display text -------------

_ATOM = st.text(alphabet="abcXYZ019.!#$%&'*+/=?^_`{|}~-", min_size=1, max_size=6)
_NAME_WORD = st.text(alphabet=st.sampled_from(list("abЯж1.\"',;:()<>@[]\\ \t")), min_size=1, max_size=6)
_ADDRESS_ITEM = st.one_of(
    st.builds(lambda local, domain: f"{local}@{domain}", _ATOM, _ATOM),
    st.builds(lambda sp, local, domain, sp2: f"{sp}<{local}@{domain}>{sp2}", st.sampled_from(["", " ", "\t "]),
              _ATOM, _ATOM, st.sampled_from(["", " "])),
    st.builds(lambda words, local, domain: f"{' '.join(words)} <{local}@{domain}>",
              st.lists(_NAME_WORD, min_size=1, max_size=3), _ATOM, _ATOM),
    _NAME_WORD,
)


@settings(max_examples=600, deadline=None)
@given(st.lists(st.lists(_ADDRESS_ITEM, min_size=1, max_size=3).map(", ".join), min_size=1, max_size=2))
def test_plain_address_fast_path_agrees_with_the_full_parser(values: list[str]) -> None:
    from prostoy_mail.mail.address_list import mailboxes
    from prostoy_mail.mail.headers import _plain_addresses, parse_addresses

    fast = _plain_addresses(values)
    full = [(display, address) for value in values for display, address in mailboxes(value)]
    if fast is not None:
        assert fast == full
    assert [a for _, a in parse_addresses(values)] == [a.lower() for _, a in full]


def test_plain_address_shapes_take_the_fast_path() -> None:
    from prostoy_mail.mail.headers import _plain_addresses

    assert _plain_addresses(["Иван  Петров <Ivan@Client.ru>, b@x.ru", "<c@x.ru>"]) == [
        ("Иван Петров", "Ivan@Client.ru"), ("", "b@x.ru"), ("", "c@x.ru")]
    assert _plain_addresses(['"Petrov, Ivan" <i@x.ru>']) is None  # quotes: the full parser decides


def _b(text: str) -> str:
    return "=?utf-8?B?" + base64.b64encode(text.encode()).decode() + "?="


# Display names that, decoded, look like addresses or lists of them (RFC 2047 §5 forbids
# reading them so): in B and Q encodings, in UTF-8 and raw 8-bit, with and without quotes.
_SPOOFING_NAMES = [
    _b("Boss <boss@client.ru>,"),
    _b("boss@client.ru"),
    _b("Boss <boss@client.ru>, Other <other@client.ru>"),
    "=?utf-8?Q?Boss_<boss@client.ru>?=",
    "=?utf-8?Q?boss=40client.ru?=",
    '"' + _b("<boss@client.ru>") + '"',
    "boss@client.ru",
    '"boss@client.ru"',
    "Boss (boss@client.ru)",
    "=?koi8-r?B?" + base64.b64encode("Бос <boss@client.ru>".encode("koi8-r")).decode() + "?=",
]


@pytest.mark.parametrize("name", _SPOOFING_NAMES)
@pytest.mark.parametrize("header", ["From", "To", "Cc"])
def test_a_display_name_never_becomes_an_address(name: str, header: str) -> None:
    from prostoy_mail.mail.parse import parse_message

    raw = (f"{header}: {name} <attacker@evil.example>\r\n"
           + ("" if header == "From" else "From: x@y.ru\r\n") + "Subject: s\r\n\r\nbody\r\n").encode()
    parsed = parse_message(raw, "")
    found = {"From": (parsed.from_addr,), "To": parsed.to, "Cc": parsed.cc}[header]
    assert found == ("attacker@evil.example",)
    assert "boss@client.ru" not in {parsed.from_addr, *parsed.to, *parsed.cc}
    if header == "From":
        assert "boss" in parsed.from_name.lower() or "бос" in parsed.from_name.lower()  # shown as text


def test_an_address_as_the_display_name_is_shown_not_used() -> None:
    from prostoy_mail.mail.headers import parse_address, parse_addresses

    assert parse_address("owner@prostoy.biz <attacker@evil.example>") == ("owner@prostoy.biz", "attacker@evil.example")
    assert parse_addresses(["Boss <a@x.ru>, " + _b("c@d.ru, e@f.ru") + " <g@h.ru>"]) == [
        ("Boss", "a@x.ru"), ("c@d.ru, e@f.ru", "g@h.ru")]
    assert parse_addresses(["team: a@x.ru, (note) b@y.ru;", '"quoted, name" <C@Z.ru>']) == [
        ("", "a@x.ru"), ("note", "b@y.ru"), ("quoted, name", "c@z.ru")]
    assert parse_addresses(["undisclosed-recipients:;", "no address here", "<@relay:u@h.ru>"]) == [("", "u@h.ru")]
    assert parse_addresses(["Иван\r\n Петров <i@x.ru>"]) == [("Иван Петров", "i@x.ru")]  # folded


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from([*'a@<>",:;()[]\\ =?.\r\n', "=?utf-8?B?", "?="]), max_size=60).map("".join))
def test_the_address_parser_takes_any_text(value: str) -> None:
    from prostoy_mail.mail.address_list import mailboxes

    for _, address in mailboxes(value):
        local, at, domain = address.rpartition("@")
        assert local and at and domain and "\n" not in address and "\r" not in address


_HEADER_PIECES = st.sampled_from([
    "Subject", "From", "To", "X-Long-Name-123", "Content-Type", "From ", "", ":", " ", "\t", "a b", ";", "é",
])
_VALUE_PIECES = st.sampled_from([" hello", "", "  ", "\t", " =?utf-8?b?0J/RgNC40LLQtdGC?=", " a: b", " x\r", " y\n",
                                 " \xff\xfe", " <a@b.ru>", "::", " tail  "])


@settings(max_examples=500, deadline=None)
@given(st.lists(st.tuples(st.booleans(), _HEADER_PIECES, _VALUE_PIECES), min_size=1, max_size=8))
def test_the_header_block_reader_gives_what_emails_parser_gives(lines: list[tuple[bool, str, str]]) -> None:
    text = "".join((" " if continuation else "") + name + ("" if continuation else ":") + value + "\r\n"
                   for continuation, name, value in lines)
    block = text.encode("utf-8", "surrogateescape")
    fast = read_header_block(block)
    if fast is None:  # not the usual shape: the caller uses email's parser
        return
    slow = BytesHeaderParser(policy=compat32).parsebytes(block + b"\r\n")
    assert fast._headers == slow._headers
    assert fast.defects == slow.defects == [] and fast.get_unixfrom() is None


def test_the_header_block_reader_takes_the_usual_headers() -> None:
    block = (b"From: Client <client@example.org>\r\nTo: sales@example.test\r\nSubject: =?utf-8?b?0J8=?=\r\n"
             b" continued\r\nDate: Fri, 27 Nov 2026 10:00:00 +0000\r\nX-Empty:\r\n")
    fast = read_header_block(block)
    assert fast is not None
    assert fast._headers == BytesHeaderParser(policy=compat32).parsebytes(block + b"\r\n")._headers
    assert fast["subject"] == "=?utf-8?b?0J8=?=\r\n continued"


def test_what_an_smtp_worker_hands_the_daemon_pickles_back_equal() -> None:
    raw = b"From: a@b.ru\r\nSubject: x\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\r\nhi\r\n--b\r\n" \
          b"Content-Type: application/pdf; name=a.pdf\r\n\r\n%PDF\r\n--b--\r\n"
    delivery = Delivery(raw, "a@b.ru", (Recipient("sales+t1@example.test", "sales", "t1"),), "127.0.0.1:1",
                        SpooledRaw("m.eml", 10, "ab", b"head"), parsed=parse_message(raw, "a@b.ru"))
    assert delivery.parsed is not None and delivery.parsed.attachments
    assert pickle.loads(pickle.dumps(delivery, protocol=pickle.HIGHEST_PROTOCOL)) == delivery


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from([b"a", b"\r\n", b"\r", b"\n", b".", b"\n\r"]), max_size=30))
def test_bare_line_ends_are_found_wherever_they_are(pieces: list[bytes]) -> None:
    data = b"".join(pieces)
    plain = data.replace(b"\r\n", b"")  # what is left when every CRLF is taken out
    assert has_bare_line_ends(data) == (b"\r" in plain or b"\n" in plain)


def _comment_text_in_full(text: str, keep: int) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n").strip()[:keep]


@settings(max_examples=400, deadline=None)
@given(st.lists(st.sampled_from(["a", "Ж", " ", "\t", "\r", "\n", "\r\n", "\u2003", "xyz"]), max_size=80).map("".join),
       st.integers(min_value=0, max_value=30))
def test_the_comment_text_is_cut_as_if_the_whole_text_were_worked_through(text: str, keep: int) -> None:
    """comment_text() works through only the start of a long text: the result is the same."""
    from prostoy_mail.mail.parse import comment_text

    assert comment_text(text, keep) == _comment_text_in_full(text, keep)


@pytest.mark.parametrize("encoding", ["8bit", "base64", "quoted-printable"])
@pytest.mark.parametrize("disposition", ["", "Content-Disposition: attachment; filename=notes.txt\r\n"])
@pytest.mark.parametrize("lines", [10, 60, 6000])
def test_a_text_limit_says_a_text_is_longer_without_carrying_all_of_it(encoding: str, disposition: str,
                                                                       lines: int) -> None:
    """What the SMTP workers send to the daemon: a text the store keeps inline comes whole, a
    longer one as its start (the store then keeps the raw message only); all else is the same."""
    import quopri

    data = "".join(f"Строка {i}: съешь же ещё этих мягких булок\r\n" for i in range(lines)).encode()
    payload = {"base64": lambda d: base64.encodebytes(d).replace(b"\n", b"\r\n"),
               "quoted-printable": lambda d: quopri.encodestring(d).replace(b"\n", b"\r\n")}.get(encoding, lambda d: d)
    raw = (f"Subject: l\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: {encoding}\r\n"
           f"{disposition}\r\n").encode() + payload(data)
    cut, whole = parse_message(raw, text_limit=4096), parse_message(raw)
    assert cut.text == whole.text[:4097]
    assert (len(whole.text) > 4096) == (lines == 6000 and not disposition)
    assert cut == dataclasses.replace(whole, text=cut.text)


# --- 8-bit attachment names, bounces -------------------------------------------------------

@pytest.mark.parametrize("charset", ["cp1251", "koi8-r", "utf-8"])
@pytest.mark.parametrize("where", ["disposition", "type", "both"])
def test_raw_8bit_attachment_names_are_recovered(charset: str, where: str) -> None:
    name = "Счёт за октябрь.pdf".encode(charset)
    disposition = b'Content-Disposition: attachment; filename="' + name + b'"\r\n' if where != "type" else \
        b"Content-Disposition: attachment\r\n"
    content_type = b'Content-Type: application/pdf; name="' + name + b'"\r\n' if where != "disposition" else \
        b"Content-Type: application/pdf\r\n"
    raw = (b"Subject: x\r\nContent-Type: multipart/mixed; boundary=B\r\n\r\n--B\r\nContent-Type: text/plain\r\n\r\n"
           b"hi\r\n--B\r\n" + content_type + disposition + b"\r\nJVBERi0=\r\n--B--\r\n")
    [attachment] = parse_message(raw, None).attachments
    assert attachment.filename == "Счёт за октябрь.pdf"


def _dsn(head: str, body: str = "This message could not be delivered.\r\n") -> bytes:
    return (head.strip().replace("\n", "\r\n") + "\r\n\r\n" + body).encode()


_BOUNCES = {
    "exim": _dsn("""From: Mail Delivery System <Mailer-Daemon@mx.example.org>
To: a@example.test
Subject: Mail delivery failed: returning message to sender
X-Failed-Recipients: nobody@example.org
Auto-Submitted: auto-replied"""),
    "qmail": _dsn("""From: MAILER-DAEMON@mail.example.net
To: a@example.test
Subject: failure notice""", "Hi. This is the qmail-send program at mail.example.net.\r\n"),
    "sendmail": _dsn("""From: Mail Delivery Subsystem <MAILER-DAEMON@example.com>
To: a@example.test
Subject: Returned mail: see transcript for details
Auto-Submitted: auto-generated (failure)
Content-Type: multipart/report; report-type=delivery-status; boundary="S"
MIME-Version: 1.0""", "--S\r\nContent-Type: text/plain\r\n\r\nfailed\r\n--S\r\n"
                      "Content-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; example.com\r\n\r\n"
                      "Final-Recipient: RFC822; x@y.z\r\nAction: failed\r\n"
                      "Status: 5.1.1\r\n\r\n--S--\r\n"),
    "aol-yahoo": _dsn("""From: MAILER-DAEMON@yahoo.com
To: a@example.test
Subject: Failure Notice"""),
    "mail.ru": _dsn("""From: Mail Delivery System <mailer-daemon@corp.mail.ru>
To: a@example.test
Subject: =?utf-8?B?0J3QtSDRg9C00LDQu9C+0YHRjCDQtNC+0YHRgtCw0LLQuNGC0Ywg0YHQvtC+0LHRidC10L3QuNC1?=
Auto-Submitted: auto-replied""", "Сообщение не было доставлено.\r\n"),
    "exchange-postmaster": _dsn("""From: Microsoft Outlook <postmaster@corp.example.com>
To: a@example.test
Subject: Undeliverable: invoice 7"""),
    "broken-mime": _dsn("""From: "Postmaster" <postmaster@example.com>
To: a@example.test
Subject: Undeliverable Mail
Content-Type: multipart/report; report-type=delivery-status"""),
    "status-part-in-mixed": _dsn("""From: robot@example.com
To: a@example.test
Subject: hello
Content-Type: multipart/mixed; boundary="M\"""", "--M\r\nContent-Type: message/delivery-status\r\n\r\n"
                                                 "Action: failed\r\n\r\n--M--\r\n"),
}


@pytest.mark.parametrize("name", sorted(_BOUNCES))
def test_common_bounces_are_bounces_and_never_auto_replies(name: str) -> None:
    parsed = parse_message(_BOUNCES[name], "mailer@example.test")  # (not the null sender: the content tells)
    assert parsed.bounce and not parsed.auto_reply


@pytest.mark.parametrize("raw", [
    _dsn("From: Postmaster <postmaster@example.org>\nTo: a@example.test\nSubject: about our servers"),
    _dsn("From: Ivan <ivan@example.org>\nTo: a@example.test\nSubject: Delivery failed? The parcel never came"),
    _dsn("From: a@example.org\nTo: a@example.test\nSubject: Read: hi\nContent-Type: multipart/report; "
         "report-type=disposition-notification; boundary=R",
         "--R\r\nContent-Type: text/plain\r\n\r\nread\r\n--R--\r\n"),
])
def test_people_and_read_receipts_are_not_bounces(raw: bytes) -> None:
    assert not parse_message(raw, "a@example.org").bounce


def test_an_out_of_office_reply_is_an_auto_reply() -> None:
    parsed = parse_message(_dsn("From: ivan@example.org\nTo: a@example.test\nSubject: Out of office\n"
                                "Auto-Submitted: auto-replied"), "ivan@example.org")
    assert parsed.auto_reply and not parsed.bounce
