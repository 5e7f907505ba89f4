"""Row validation and batching: every row gets a verdict, and only valid, allowed numbers pass."""

from __future__ import annotations

import csv
import io
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from producer.upload.batches import ROW_FIELD, iter_batches
from producer.upload.ingest import open_upload
from producer.upload.validate import Accepted, Columns, NumberPolicy, Reject, check_row, metadata_json
from shared.errors import BadUpload, InvalidNumber
from shared.numbers import NumberType, normalise_slow

CN = NumberPolicy("CN")
COLUMNS = Columns.from_header(["name", "phone", "note"], 1)


@pytest.mark.parametrize(
    ("raw", "e164"),
    [
        ("13900000001", "+8613900000001"),
        (" 139 0000 0001 ", "+8613900000001"),
        ("+86 139-0000-0001", "+8613900000001"),
        ("13900000001.0", "+8613900000001"),  # a numeric cell exported as float
        ("１３９００００００01", "+8613900000001"),  # full-width digits from a Chinese IME
    ],
)
def test_valid_numbers_are_normalised(raw: str, e164: str) -> None:
    """Written forms of one number all become the same E.164; other cells become metadata."""
    verdict = check_row(2, ["张三", raw, ""], COLUMNS, CN)
    assert verdict == Accepted(2, e164, '{"name":"张三"}')


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("12345", "not a valid number"),
        ("1390000000", "too short"),
        ("139000000011", "too long"),
        ("abc", "letters"),
        ("1.39E+10", "scientific notation"),
        ("+85291234567", "outside the campaign's allowed regions"),
        ("+442079460000", "outside the campaign's allowed regions"),
    ],
)
def test_bad_numbers_are_rejected_with_row_field_and_reason(raw: str, reason: str) -> None:
    """Each refused number keeps its row, field, raw value and a reason a person can act on."""
    verdict = check_row(7, ["x", raw, ""], COLUMNS, CN)
    assert isinstance(verdict, Reject)
    assert (verdict.row, verdict.field, verdict.raw) == (7, "phone", raw)
    assert reason in verdict.reason


def test_premium_rate_is_refused_by_the_toll_fraud_guard() -> None:
    """A UK premium-rate number is refused even where the UK is allowed."""
    policy = NumberPolicy("GB", frozenset({"GB"}))
    verdict = check_row(2, ["x", "09098790000", ""], COLUMNS, policy)
    assert isinstance(verdict, Reject)
    assert "toll-fraud" in verdict.reason


def test_allowed_regions_admit_other_regions() -> None:
    """A campaign that lists HK takes HK mobiles."""
    policy = NumberPolicy.for_campaign("CN", ["CN", "HK"], ["mobile"])
    assert isinstance(check_row(2, ["x", "+85291234567", ""], COLUMNS, policy), Accepted)


def test_short_rows_and_long_values_are_handled() -> None:
    """A row without the phone cell is a reject; a 100 kB value is shortened in the report."""
    verdict = check_row(3, ["only name"], COLUMNS, CN)
    assert isinstance(verdict, Reject) and "empty" in verdict.reason
    long = check_row(4, ["x", "9" * 100_000, ""], COLUMNS, CN)
    assert isinstance(long, Reject) and len(long.raw) <= 201


def test_metadata_keeps_other_columns_by_header_and_drops_nul() -> None:
    """Blank and repeated headers get column numbers, so no cell is lost; NUL is dropped for Postgres."""
    columns = Columns.from_header(["phone", "", "name", "name"], 0)
    data = json.loads(metadata_json(["139", "a", 'Zhang "3"\x00\\', "dup", "extra"], columns))
    assert data == {"column_2": "a", "name": 'Zhang "3"\\', "name_4": "dup", "column_5": "extra"}


def _pipeline(data: bytes, policy: NumberPolicy = CN) -> tuple[list[Accepted], list[Reject], int]:
    """The pure part of an upload over bytes: (accepted, rejects, data rows)."""
    accepted: list[Accepted] = []
    rejects: list[Reject] = []
    rows = 0
    with open_upload(io.BytesIO(data), "f.csv", None) as parsed:
        for batch in iter_batches(parsed.table.rows, parsed.columns, policy, size=7):
            rows += batch.rows
            rejects += batch.rejects
            for line in filter(None, batch.copy_text.decode().split("\n")):  # COPY splits on \n only
                number, e164, meta = line.split("\t")
                json.loads(meta.replace("\\\\", "\\"))
                accepted.append(Accepted(int(number), e164, meta))
    return accepted, rejects, rows


def test_batches_keep_row_numbers_as_the_spreadsheet_shows_them() -> None:
    """Header is row 1; blank rows count but are not data; a bad row does not hide its neighbours."""
    data = b"phone,name\n13900000001,a\n\nbad,b\n13900000002,c\n"
    accepted, rejects, rows = _pipeline(data)
    assert [(a.row, a.e164) for a in accepted] == [(2, "+8613900000001"), (5, "+8613900000002")]
    assert [(r.row, r.field, r.raw) for r in rejects] == [(4, "phone", "bad")]
    assert rows == 3


def test_unsplittable_row_is_a_row_reject() -> None:
    """A row csv cannot split (a 200 kB field) is one reject; the next row is still read."""
    data = ("phone,x\n13900000001," + "y" * 200_000 + "\n13900000002,z\n").encode()
    accepted, rejects, _ = _pipeline(data)
    assert [a.row for a in accepted] == [3]
    assert rejects[0].row == 2 and rejects[0].field == ROW_FIELD


_cell = st.one_of(
    st.text(max_size=20),
    st.from_regex(r"\+?[0-9 \-]{0,16}", fullmatch=True),
    st.sampled_from(["13900000001", "+8613900000002", "09098790000", "1.39E+10", "13900000003.0", "+85291234567"]),
)


@given(st.lists(st.lists(_cell, min_size=1, max_size=4), max_size=12), st.sampled_from([",", ";", "\t"]),
       st.sampled_from(["utf-8", "utf-8-sig", "gb18030"]))
def test_random_rows_never_crash_and_never_accept_an_invalid_number(
    rows: list[list[str]], delimiter: str, encoding: str
) -> None:
    """Whatever the cells, each data row is accepted or rejected, and every accepted number is valid."""
    out = io.StringIO()
    writer = csv.writer(out, delimiter=delimiter)
    writer.writerow(["phone", "name"])
    writer.writerows(rows)
    try:
        data = out.getvalue().encode(encoding)
    except UnicodeEncodeError:
        return
    try:
        accepted, rejects, count = _pipeline(data)
    except BadUpload:
        return
    assert len(accepted) + len(rejects) == count
    for row in accepted:
        assert normalise_slow(row.e164, "CN", allowed_types=CN.allowed_types).e164 == row.e164


@given(st.binary(max_size=3000))
def test_arbitrary_bytes_give_bad_upload_or_verdicts(data: bytes) -> None:
    """Binary junk is BadUpload or per-row rejects, never an exception or an invalid number."""
    try:
        accepted, rejects, count = _pipeline(b"phone,x\n" + data)
    except BadUpload:
        return
    assert len(accepted) + len(rejects) == count
    for row in accepted:
        assert normalise_slow(row.e164, "CN").e164 == row.e164


def test_policy_for_campaign_refuses_unknown_regions_and_types() -> None:
    """A stored policy that makes no sense is a ConfigError, not a reject per row."""
    with pytest.raises(Exception, match="region"):
        NumberPolicy.for_campaign("XX", [], [])
    with pytest.raises(Exception, match="allowed_types"):
        NumberPolicy.for_campaign("CN", [], ["sofa"])
    assert NumberPolicy.any_number("CN").allowed_types == frozenset(NumberType)


def test_any_number_policy_accepts_foreign_and_premium() -> None:
    """The DNC policy takes any valid number but still refuses junk."""
    policy = NumberPolicy.any_number("CN")
    assert policy.normalise("+442079460000").e164 == "+442079460000"
    with pytest.raises(InvalidNumber):
        policy.normalise("12")
