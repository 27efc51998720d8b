import pytest
from hypothesis import given
from hypothesis import strategies as st

from tongdai import numbers
from tongdai.numbers import is_phone_number, normalize, same_number


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        # The seed's own example: Viettel 0169 became 039 in 2018.
        ("01693608879", "0393608879"),
        ("0901234567", "0901234567"),
        # How integrators write the country code.
        ("+84901234567", "0901234567"),
        ("+84 90 123 4567", "0901234567"),
        ("0084901234567", "0901234567"),
        ("84901234567", "0901234567"),
        ("84-90-123-4567", "0901234567"),
        ("+84 (0)90 123 4567", "0901234567"),
        ("+841693608879", "0393608879"),
        ("841693608879", "0393608879"),
        # Separators.
        ("090.123.4567", "0901234567"),
        ("090-123-4567", "0901234567"),
        ("(028) 7301 9555", "02873019555"),
        ("028\u00a07301\u00a09555", "02873019555"),
        (" 0901234567\t", "0901234567"),
        # A spreadsheet dropped the leading 0.
        ("901234567", "0901234567"),
        ("393608879", "0393608879"),
        ("2873019555", "02873019555"),
        ("2363822123", "02363822123"),
        ("1693608879", "0393608879"),
        # Every 2018 mobile mapping.
        ("01201234567", "0701234567"),
        ("01211234567", "0791234567"),
        ("01221234567", "0771234567"),
        ("01261234567", "0761234567"),
        ("01281234567", "0781234567"),
        ("01231234567", "0831234567"),
        ("01241234567", "0841234567"),
        ("01251234567", "0851234567"),
        ("01271234567", "0811234567"),
        ("01291234567", "0821234567"),
        ("01621234567", "0321234567"),
        ("01631234567", "0331234567"),
        ("01641234567", "0341234567"),
        ("01651234567", "0351234567"),
        ("01661234567", "0361234567"),
        ("01671234567", "0371234567"),
        ("01681234567", "0381234567"),
        ("01861234567", "0561234567"),
        ("01881234567", "0581234567"),
        ("01991234567", "0591234567"),
        # 2017 landlines: unambiguous old codes are rewritten.
        ("0438251234", "02438251234"),  # Ha Noi 04 -> 024
        ("0511 3822 123", "02363822123"),  # Da Nang 0511 -> 0236
        ("0313 123 456", "02253123456"),  # Hai Phong 031 -> 0225
        ("0650 3123 456", "02743123456"),  # Binh Duong 0650 -> 0274
        # ... the ambiguous ones are current mobiles and stay as they are.
        ("0837123456", "0837123456"),  # 08 (old HCMC) is mobile 083 now
        ("0383123456", "0383123456"),  # 038 (old Nghe An) is Viettel now
        ("0703123456", "0703123456"),  # 070 (old Vinh Long) is MobiFone now
        ("0523123456", "0523123456"),  # 052 (old Quang Binh) is Vietnamobile now
        # Current landlines are not touched.
        ("02873019555", "02873019555"),
        ("02403123456", "02403123456"),  # Ha Noi 024 + 03..., not old Bac Giang 0240
        ("02103123456", "02103123456"),  # Phu Tho kept its code
        # Service and emergency numbers are kept.
        ("1800 1090", "18001090"),
        ("1900 123 456", "1900123456"),
        ("19001234", "19001234"),
        ("113", "113"),
        ("115", "115"),
        ("+84 1900 1234", "19001234"),
        # Extensions and other short strings of digits come back as they are.
        ("101", "101"),
        ("12345678", "12345678"),
        # Other countries keep E.164.
        ("+1 415 555 0100", "+14155550100"),
        ("0014155550100", "+14155550100"),
        ("+65 6123 4567", "+6561234567"),
    ],
)
def test_normalize(raw: str, expected: str) -> None:
    assert normalize(raw) == expected


@pytest.mark.parametrize(
    "raw", ["", "   ", "abc", "090123456x", "+", "++84901234567", "12", "09 01 23 45 67 89 01 23",
            "+84 12", "0012", "sip:alice@example.com", "090/123/4567"],
)
def test_normalize_rejects_non_numbers(raw: str) -> None:
    with pytest.raises(ValueError) as err:
        normalize(raw)
    message = str(err.value)
    assert message and "\n" not in message
    assert message.count(". ") == 0  # one sentence


def test_tables_are_consistent() -> None:
    # Every new mobile prefix of 2018 is a current mobile prefix, and an old landline
    # that gets rewritten cannot be a number in use today: a 10-digit one must not
    # start like a mobile, an 11-digit one not like a current landline.
    assert set(numbers.MOBILE_2018.values()) <= numbers.MOBILE_PREFIXES
    for old, new in numbers.AREA_2017.items():
        assert new in numbers.AREA_CODES
        if len(old) <= 3:
            assert old not in numbers.MOBILE_PREFIXES, old
        else:
            assert old not in numbers.AREA_CODES and old[:3] not in numbers.AREA_CODES, old
    assert len(numbers.AREA_CODES) == 63


@pytest.mark.parametrize(
    ("s", "ok"),
    [("0901234567", True), ("+84901234567", True), ("113", True), ("101", True),
     ("090 123 4567", True), ("12", False), ("1234567890123456", False), ("alice", False),
     ("", False), ("+", False), ("84+901234567", False), ("090123456x", False)],
)
def test_is_phone_number(s: str, ok: bool) -> None:
    assert is_phone_number(s) is ok


def test_same_number() -> None:
    assert same_number("01693608879", "+84 39 360 8879")
    assert same_number("0084901234567", "090-123-4567")
    assert same_number("(04) 3825 1234", "024 3825 1234")
    assert not same_number("0901234567", "0901234568")
    assert not same_number("alice", "alice")  # not numbers at all
    assert not same_number("0901234567", "")


@given(st.from_regex(r"0(3[2-9]|5[25689]|7[06-9]|8[1-9]|9[0-46-9])[0-9]{7}", fullmatch=True))
def test_current_mobiles_are_fixed_points_in_every_spelling(n: str) -> None:
    assert normalize(n) == n
    assert normalize("+84" + n[1:]) == n
    assert normalize("84" + n[1:]) == n
    assert normalize(n[1:]) == n
    assert normalize(f"{n[:4]} {n[4:7]} {n[7:]}") == n
    assert normalize(normalize(n)) == n


@given(st.text(max_size=20))
def test_normalize_is_idempotent_or_raises(s: str) -> None:
    try:
        n = normalize(s)
    except ValueError:
        return
    assert normalize(n) == n
    assert is_phone_number(n)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("0901234567", "0901234567"),  # mobile
        ("090 123 4567", "0901234567"),
        ("+84 90 123 4567", "0901234567"),
        ("901234567", "0901234567"),  # the 0 a spreadsheet dropped
        ("01693608879", "0393608879"),  # retired 11-digit mobile, renumbered
        ("02873019555", "02873019555"),  # landline, 2-digit area code
        ("02363822123", "02363822123"),  # landline, 3-digit area code
        ("(04) 3825 1234", "02438251234"),  # 2017 area-code change
        ("1800 1090", "18001090"),
        ("1900 123 456", "1900123456"),
        ("113", "113"),
        ("+1 415 555 0100", "+14155550100"),
        ("0065 6123 4567", "+6561234567"),
    ],
)
def test_dialable_numbers(raw: str, expected: str) -> None:
    assert numbers.dialable(raw) == expected


@pytest.mark.parametrize(
    "raw",
    [
        "12",  # too short for anything
        "19",
        "101",  # an extension is not an outside number
        "116",
        "0912",  # a mobile prefix and too few digits
        "09123456789",  # one digit too many
        "0101234567",  # 010 is neither a mobile prefix nor an old or new area code
        "0212345678",  # area code 0212 and one digit short
        "02012345678",  # 020 is no area code
        "180012",  # 1800 with too few digits
        "19001234567",  # ... too many
        "12345678",  # digits that are no Vietnamese number
        "+1234",  # too short for E.164
        "+0123456789",  # no country code starts with 0
        "12345678901234567890",
        "alice",
        "",
    ],
)
def test_undialable_numbers(raw: str) -> None:
    with pytest.raises(ValueError) as err:
        numbers.dialable(raw)
    message = str(err.value)
    assert message and "\n" not in message and message.count(". ") == 0


@given(st.text(max_size=20))
def test_a_dialable_number_is_its_own_national_form(s: str) -> None:
    try:
        n = numbers.dialable(s)
    except ValueError:
        return
    assert numbers.dialable(n) == n == normalize(s)
