"""Cleaning a written phone number down to an optional '+' and ASCII digits.

People type numbers with spaces, dashes, dots and parentheses, paste them
from web pages with no-break and zero-width spaces, and in Chinese IMEs get
full-width digits and a full-width plus. All of that is form, not content, and
is removed here. Letters and any other character are content we cannot use:
the row is rejected with a reason naming the character, rather than letting
phonenumbers skip leading text or read vanity letters as digits.
"""

from __future__ import annotations

from shared.errors import InvalidNumber

_SEPARATORS = (
    " \t\r\n-.()/[]~"
    "\u00a0\u00ad\u200b\u2060\u3000"  # no-break, soft-hyphen, zero-width and ideographic spaces
    "\u2010\u2011\u2012\u2013\u2014\u2015\u2212\u30fc"  # dashes, minus, katakana long-vowel mark
    "\uff08\uff09\uff0d\uff0e\uff0f\uff3b\uff3d\uff5e"  # full-width ( ) - . / [ ] ~
)
_CLEAN_TABLE = str.maketrans(
    {
        **{ord(char): None for char in _SEPARATORS},
        **{0xFF10 + digit: ord("0") + digit for digit in range(10)},  # full-width 0-9
        0xFF0B: ord("+"),  # full-width plus
    }
)


def _junk_reason(text: str) -> str:
    """Name the first character that keeps a cleaned string from being '+' and digits."""
    if not text:
        return "empty"
    for index, char in enumerate(text):
        if char.isalpha():
            return f"contains letters ({char!r}); a phone number has only digits"
        if char == "+" and index > 0:
            return "'+' is only allowed at the start"
        if not ("0" <= char <= "9" or char == "+"):
            return f"contains {char!r}, which is not part of a phone number"
    return "has no digits"


def clean(raw: str) -> str:
    """Reduce a written number to an optional '+' and ASCII digits, or raise InvalidNumber.

    phonenumbers alone would skip leading text and turn vanity letters into
    digits ("1-800-FLOWERS"); in an upload those are data errors, so they are
    rejected here, before either parse path sees the input.
    """
    text = raw.strip()
    if text[:4].lower() == "tel:":
        text = text[4:]
    text = text.translate(_CLEAN_TABLE)
    if text.isascii() and (text.isdigit() or (text[:1] == "+" and text[1:].isdigit())):
        return text
    raise InvalidNumber(raw, _junk_reason(text))
