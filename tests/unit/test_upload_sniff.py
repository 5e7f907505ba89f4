"""Sniffing an upload: format, encoding, delimiter and phone column, before any row is read."""

from __future__ import annotations

import codecs
import io

import pytest
from hypothesis import given
from hypothesis import strategies as st

from producer.upload.ingest import open_upload
from producer.upload.readers import cell_text
from producer.upload.sniff import PHONE_COLUMN_NAMES, choose_delimiter, find_phone_column, header_key, sniff
from shared.errors import BadUpload

TEXT = "name,phone,note\n张三,13900000001,VIP\n李四,13900000002,\n"


@pytest.mark.parametrize(
    ("data", "encoding"),
    [
        (TEXT.encode("utf-8"), "utf-8"),
        (codecs.BOM_UTF8 + TEXT.encode("utf-8"), "utf-8-sig"),
        (TEXT.encode("gbk"), "gb18030"),
        (TEXT.encode("gb18030"), "gb18030"),
        (TEXT.encode("utf-16"), "utf-16"),
        (b"phone\n13900000001\n", "utf-8"),
    ],
)
def test_encoding_is_detected(data: bytes, encoding: str) -> None:
    """UTF-8 with and without BOM, GBK/GB18030 and UTF-16 with BOM are all read as text."""
    assert sniff(data, "f.csv").encoding == encoding


@pytest.mark.parametrize("delimiter", [",", ";", "\t"])
def test_delimiter_is_detected(delimiter: str) -> None:
    """The delimiter that splits the header and every row alike wins."""
    text = delimiter.join(["name", "phone", "note"]) + "\n" + delimiter.join(["a, b", "13900000001", "x"]) + "\n"
    if delimiter == ",":
        text = 'name,phone,note\n"a; b",13900000001,x\n'
    assert choose_delimiter(text) == delimiter


def test_single_column_file_uses_comma() -> None:
    """A file with only a phone column has no delimiter to find; comma is harmless."""
    assert choose_delimiter("phone\n13900000001\n") == ","


def test_semicolon_beats_commas_inside_values() -> None:
    """European exports: semicolons between cells, commas inside them."""
    assert choose_delimiter("phone;name\n13900000001;Zhang, San\n13900000002;Li, Si\n") == ";"


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        (b"", "empty"),
        (b"  \r\n\n", "empty"),
        (b"\x00\x01\x02\x03binary\x00" * 20, "binary"),
        (bytes(range(256)) * 4, "binary"),
        ("phone\n13900000001\n".encode("utf-16-le"), "UTF-16"),
        (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 100, ".xls"),
        ("phone,name\n13900000001,Müller ÿ\n".encode("latin-1") * 3, "neither UTF-8 nor GBK"),
    ],
)
def test_unreadable_files_fail_with_one_clear_message(data: bytes, fragment: str) -> None:
    """Empty, binary, BOM-less UTF-16, legacy .xls and unknown encodings: one BadUpload naming the file."""
    with pytest.raises(BadUpload, match=r"f\.csv") as caught:
        sniff(data, "f.csv")
    assert fragment in str(caught.value)


def test_zip_is_xlsx() -> None:
    """A zip signature means a workbook, whatever the file is called."""
    assert sniff(b"PK\x03\x04rest", "f.xlsx").kind == "xlsx"


@pytest.mark.parametrize("name", [*PHONE_COLUMN_NAMES, " Phone ", "MOBILE", "手机 号", "Phone_Number", "TEL."])
def test_every_phone_column_name_is_found(name: str) -> None:
    """Header names are compared without case, spaces or punctuation."""
    assert find_phone_column(["客户", name, "备注"], None, "f.csv") == 1


def test_phone_column_option_wins_and_unknown_names_are_listed() -> None:
    """--phone-column matches like the built-in names; a wrong one lists the real headers."""
    assert find_phone_column(["phone", "alt"], "ALT", "f.csv") == 1
    with pytest.raises(BadUpload, match=r"no column 'cell'.*'phone', 'alt'"):
        find_phone_column(["phone", "alt"], "cell", "f.csv")


def test_missing_phone_column_says_what_to_do() -> None:
    """No phone column: the message names the fix, and spots a missing header row."""
    with pytest.raises(BadUpload, match="--phone-column"):
        find_phone_column(["name", "city"], None, "f.csv")
    with pytest.raises(BadUpload, match="add a header row"):
        find_phone_column(["13900000001", "x"], None, "f.csv")


def test_header_key_ignores_bom_case_and_separators() -> None:
    """Excel's BOM, case, spaces and underscores do not change a header's meaning."""
    assert header_key("\ufeffPhone Number") == header_key("phone_number") == "phonenumber"


@pytest.mark.parametrize(
    ("value", "text"),
    [(None, ""), (13900000001, "13900000001"), (13900000001.0, "13900000001"), (1.5, "1.5"), (True, "TRUE")],
)
def test_spreadsheet_cells_read_as_shown(value: object, text: str) -> None:
    """XLSX values become the text a person sees in the cell."""
    assert cell_text(value) == text


def test_late_encoding_error_is_found_before_any_row() -> None:
    """A byte that no encoding accepts, after a megabyte of ASCII, fails the prescan naming the line."""
    body = b"phone\n" + b"13900000001\n" * 100_000 + b"13900000002,\xff\n"
    with pytest.raises(BadUpload, match=r"line 100002 is not valid UTF-8"), open_upload(
        io.BytesIO(body), "f.csv", None
    ):
        pass


def test_gbk_below_an_ascii_start_is_read_as_gbk() -> None:
    """A GBK export whose first Chinese text is far down is still read, as GB18030."""
    body = b"phone,name\n" + b"13900000001,a\n" * 30_000 + "13900000002,张三\n".encode("gbk")
    with open_upload(io.BytesIO(body), "f.csv", None) as parsed:
        assert parsed.sniffed.encoding == "gb18030"
        assert list(parsed.table.rows)[-1].cells == ["13900000002", "张三"]


@given(st.binary(max_size=2000))
def test_arbitrary_bytes_never_crash_the_sniffer(data: bytes) -> None:
    """Any input either sniffs or fails with BadUpload; nothing else escapes."""
    try:
        sniffed = sniff(data, "f.csv")
    except BadUpload:
        return
    assert sniffed.kind in ("csv", "xlsx")
    assert sniffed.delimiter in (",", ";", "\t")
