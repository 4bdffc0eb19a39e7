"""A new task's title from a message's decoded subject (what `new_task` rules open).

The reply and forward prefixes mail clients add (`Re:`, `Fwd:`, `Ответ:`, `Отв:`, `Пересл:`,
also numbered like `Re[2]:`, and repeated) are dropped, whitespace and control characters
are tidied, and a long subject is cut at a word near MAX_TITLE characters.
"""

from __future__ import annotations

import re

MAX_TITLE = 120  # characters: a subject is rarely longer, a task list shows about that much
NO_SUBJECT = "(без темы)"
_PREFIX = re.compile(
    r"^(?:\s*(?:re|fwd?|aw|wg|sv|vs|tr|antw|rif|ответ|отв|пересл|переслать|fw)\s*(?:\[\d+\]|\(\d+\)|\^\d+)?\s*[:：])+",
    re.IGNORECASE)
_CONTROL = re.compile(r"[\x00-\x1f\x7f\u200b-\u200f\u2028\u2029\ufeff]")


def task_title(subject: str) -> str:
    text = " ".join(_CONTROL.sub(" ", subject).split())
    text = _PREFIX.sub("", text).strip()
    if len(text) > MAX_TITLE:
        cut = text[: MAX_TITLE - 1]
        space = cut.rfind(" ")
        text = (cut[:space] if space > MAX_TITLE // 2 else cut).rstrip() + "…"
    return text or NO_SUBJECT
