import pytest

from tongdai.pbx.cdr import Outcome, outcome_of_final, seconds, status_detail


@pytest.mark.parametrize(
    ("outcome", "direction", "expected"),
    [
        (Outcome.ANSWERED, "from_ab", "SUCCESS"),
        (Outcome.ANSWERED, "to_ab", "SUCCESS"),
        (Outcome.BUSY, "from_ab", "BUSY"),
        (Outcome.BUSY, "to_ab", "BUSY"),
        (Outcome.CALLER_GAVE_UP, "from_ab", "CANCELLED"),
        (Outcome.CALLER_GAVE_UP, "to_ab", "IVR"),
        (Outcome.NO_ANSWER, "from_ab", "IVR"),
        (Outcome.NO_ANSWER, "to_ab", "IVR"),
        (Outcome.FAILED, "from_ab", "ERROR"),
        (Outcome.FAILED, "to_ab", "ERROR"),
    ],
)
def test_status_table(outcome: Outcome, direction: str, expected: str) -> None:
    assert status_detail(outcome, direction) == expected


@pytest.mark.parametrize(
    ("code", "rang", "expected"),
    [
        (200, True, Outcome.ANSWERED),
        (486, True, Outcome.BUSY),
        (600, False, Outcome.BUSY),
        (480, True, Outcome.NO_ANSWER),
        (408, True, Outcome.NO_ANSWER),
        (480, False, Outcome.FAILED),
        (404, False, Outcome.FAILED),
        (403, True, Outcome.FAILED),
        (503, False, Outcome.FAILED),
        (603, True, Outcome.FAILED),
    ],
)
def test_final_code_outcomes(code: int, rang: bool, expected: Outcome) -> None:
    assert outcome_of_final(code, rang=rang) is expected


def test_seconds_round_half_up() -> None:
    assert seconds(100.0, 100.49) == 0
    assert seconds(100.0, 100.5) == 1
    assert seconds(100.0, 143.2) == 43
    assert seconds(100.0, 99.0) == 0
