"""What kind of file an upload is: spreadsheet or text, encoding, delimiter, phone column.

Pure: works on the first bytes of the file and on the header row, never on
the file itself, so every check runs before anything is inserted and a bad
file fails with one message that says what to do about it.

Sales teams export lists from Excel, WPS and CRMs. In China that means CSV in
UTF-8 (with or without a BOM) or GBK/GB18030 ("CSV (Comma delimited)" on a
Chinese Windows), sometimes UTF-16 ("Unicode text", tab-separated), comma,
semicolon or tab delimited, or an XLSX workbook. Anything else is refused
with a hint; a guess that turns every name into mojibake helps nobody.
"""

from __future__ import annotations

import codecs
import csv
import io
import re
from dataclasses import dataclass
from typing import Literal

from shared.errors import BadUpload

SAMPLE_BYTES = 256 * 1024
DELIMITERS = (",", ";", "\t")
_DELIMITER_NAMES = {",": "comma", ";": "semicolon", "\t": "tab"}

# Header names that mean "the phone number", compared after header_key().
PHONE_COLUMN_NAMES = (
    "phone", "mobile", "number", "tel", "手机", "手机号", "电话", "号码",
    "phonenumber", "mobilenumber", "telephone", "cellphone", "手机号码", "电话号码", "联系电话",
)
_PHONE_KEYS = frozenset(PHONE_COLUMN_NAMES)

_ZIP_MAGIC = b"PK\x03\x04"
_OLE2_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"  # legacy .xls / .doc
_CONTROL = frozenset(range(0x20)) - {0x09, 0x0A, 0x0C, 0x0D, 0x1A}
_KEY_DROP = re.compile(r"[\s_\-.:：（）()]+")
_SAVE_AS = "save it from the spreadsheet as 'CSV UTF-8' (or XLSX) and upload again"

Kind = Literal["csv", "xlsx"]


@dataclass(frozen=True, slots=True)
class Sniffed:
    """How to read a file: ``encoding`` and ``delimiter`` apply to CSV only."""

    kind: Kind
    encoding: str = "utf-8"
    delimiter: str = ","

    def describe(self) -> str:
        if self.kind == "xlsx":
            return "XLSX workbook"
        return f"CSV, {self.encoding}, {_DELIMITER_NAMES.get(self.delimiter, repr(self.delimiter))}-separated"


def sniff(sample: bytes, filename: str) -> Sniffed:
    """Decide how to read a file from its first bytes; BadUpload when it cannot be read at all."""
    if not sample.strip(b" \t\r\n"):
        raise BadUpload(f"{filename}: the file is empty; upload a file with a header row and one number a row")
    if sample.startswith(_ZIP_MAGIC):
        return Sniffed("xlsx")
    if sample.startswith(_OLE2_MAGIC):
        raise BadUpload(f"{filename}: this is a legacy Excel .xls workbook; {_SAVE_AS}")
    encoding, text = _decode_sample(sample, filename)
    if not text.strip(" \t\r\n\ufeff"):
        raise BadUpload(f"{filename}: the file is empty; upload a file with a header row and one number a row")
    return Sniffed("csv", encoding, choose_delimiter(text))


def _decode_sample(sample: bytes, filename: str) -> tuple[str, str]:
    """The encoding of a text file and its decoded sample; refuses binary and unknown encodings."""
    if sample.startswith(codecs.BOM_UTF8):
        return "utf-8-sig", _decode(sample, "utf-8-sig", filename)
    if sample.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16", _decode(sample, "utf-16", filename)
    if b"\x00" in sample:
        if _looks_like_bomless_utf16(sample):
            raise BadUpload(f"{filename}: the file looks like UTF-16 text without a byte-order mark; {_SAVE_AS}")
        raise BadUpload(f"{filename}: this is a binary file, not CSV or XLSX; {_SAVE_AS}")
    controls = sum(1 for byte in sample[:4096] if byte in _CONTROL)
    if controls * 100 > min(len(sample), 4096):
        raise BadUpload(f"{filename}: this is a binary file, not CSV or XLSX; {_SAVE_AS}")
    for encoding in ("utf-8", "gb18030"):  # GB18030 is a superset of GBK and GB2312
        try:
            return encoding, codecs.getincrementaldecoder(encoding)("strict").decode(sample, final=False)
        except UnicodeDecodeError:
            continue
    raise BadUpload(
        f"{filename}: the text is neither UTF-8 nor GBK/GB18030{_guess_hint(sample)}; {_SAVE_AS}"
    )


def _decode(sample: bytes, encoding: str, filename: str) -> str:
    try:
        return codecs.getincrementaldecoder(encoding)("strict").decode(sample, final=False)
    except UnicodeDecodeError as exc:
        raise BadUpload(
            f"{filename}: the file starts with a {encoding} byte-order mark but byte {exc.start} "
            f"is not valid {encoding}; {_SAVE_AS}"
        ) from None


def _looks_like_bomless_utf16(sample: bytes) -> bool:
    """ASCII text in UTF-16 puts a NUL at every other byte."""
    head = sample[:2048]
    evens, odds = head[0::2], head[1::2]
    return bool(head) and (evens.count(0) * 4 > len(evens) * 3 or odds.count(0) * 4 > len(odds) * 3)


def _guess_hint(sample: bytes) -> str:
    """A second opinion on the encoding, to tell the user what their file probably is."""
    try:
        from charset_normalizer import from_bytes
    except ImportError:  # optional: the message is still clear without the guess
        return ""
    best = from_bytes(sample[:65536]).best()
    return f" (it looks like {best.encoding})" if best is not None else ""


def choose_delimiter(text: str) -> str:
    """The delimiter that splits the header into most columns, consistently down the sample.

    Scored per candidate as (header splits at all, share of sample rows with
    the header's field count, header field count); ties go to the comma. A
    single-column file has no delimiter to find and gets the comma.
    """
    lines = text.splitlines()
    if len(lines) > 1 and not text.endswith(("\n", "\r")):
        lines = lines[:-1]  # the sample may end mid-row
    lines = [line for line in lines[:200] if line.strip()]
    if not lines:
        return ","
    best, best_score = ",", (False, 0.0, 1)
    for delimiter in DELIMITERS:
        counts = [len(row) for row in _split(lines, delimiter)]
        if not counts:
            continue
        header = counts[0]
        consistent = sum(1 for count in counts if count == header) / len(counts)
        score = (header > 1, consistent, header)
        if score > best_score:
            best, best_score = delimiter, score
    return best


def _split(lines: list[str], delimiter: str) -> list[list[str]]:
    try:
        return list(csv.reader(io.StringIO("\n".join(lines)), delimiter=delimiter))
    except csv.Error:
        return []


def header_key(name: str) -> str:
    """A header name as compared: case, spaces, punctuation and a BOM do not matter."""
    return _KEY_DROP.sub("", name.replace("\ufeff", "").casefold())


def find_phone_column(header: list[str], wanted: str | None, filename: str) -> int:
    """Index of the phone column: ``wanted`` by name, else the first column with a phone name."""
    keys = [header_key(name) for name in header]
    shown = ", ".join(repr(name.strip()) for name in header if name.strip()) or "none"
    if wanted is not None:
        key = header_key(wanted)
        if key in keys:
            return keys.index(key)
        raise BadUpload(f"{filename}: there is no column {wanted!r}; the header row has {shown}")
    for index, key in enumerate(keys):
        if key in _PHONE_KEYS:
            return index
    hint = ""
    if header and re.fullmatch(r"\s*\+?[\d\s\-()]{5,}\s*", header[0]):
        hint = " (the first row looks like a number: add a header row above it)"
    raise BadUpload(
        f"{filename}: no phone column found{hint}; the header row has {shown}. Name the column "
        f"one of {', '.join(PHONE_COLUMN_NAMES[:8])}, or pass --phone-column NAME"
    )
