"""Vietnamese phone numbers as integrators write them, reduced to one national form.

CRMs hold numbers as ``+84 90 123 4567``, ``0084901234567``, ``84-90-123-4567``,
``(028) 7301 9555``, ``901234567`` (a spreadsheet dropped the leading 0) or the retired
11-digit mobiles (``01693608879``). ``normalize`` turns them all into the national form
with the trunk prefix 0 (``0901234567``) so numbers can be compared and routed.

The facts below come from MIC decisions 798/QĐ-BTTTT (2018, mobile renumbering) and
2036/QĐ-BTTTT (2016, landline area codes, in force 2017), as published by the press,
the ITU and libphonenumber; they are copied here so nothing is read at run time.
"""

from __future__ import annotations

import re

__all__ = ["compact", "dialable", "is_phone_number", "normalize", "same_number"]

# 2018: old 11-digit mobiles ``01xx`` + 7 digits became the new 3-digit prefix + the
# same 7 digits. The old numbers stopped working on 2019-06-30; CRMs still hold them.
MOBILE_2018: dict[str, str] = {
    # MobiFone
    "0120": "070", "0121": "079", "0122": "077", "0126": "076", "0128": "078",
    # VinaPhone
    "0123": "083", "0124": "084", "0125": "085", "0127": "081", "0129": "082",
    # Viettel
    "0162": "032", "0163": "033", "0164": "034", "0165": "035", "0166": "036",
    "0167": "037", "0168": "038", "0169": "039",
    # Vietnamobile, Gmobile
    "0186": "056", "0188": "058", "0199": "059",
}

# Current 10-digit mobile prefixes (with number portability, not a carrier guarantee).
# 055 is listed by some sources only; it is treated as mobile so it is never rewritten.
MOBILE_PREFIXES: frozenset[str] = frozenset({
    "086", "096", "097", "098", "032", "033", "034", "035", "036", "037", "038", "039",
    "088", "091", "094", "081", "082", "083", "084", "085",
    "089", "090", "093", "070", "076", "077", "078", "079",
    "092", "056", "058", "052", "099", "059", "087", "055",
})

# 2017: landline area codes moved to 024/028 (Ha Noi, Ho Chi Minh City) and 02xx.
# Only the old codes whose old numbers cannot be mistaken for a current number are
# listed. Left out on purpose: 08 and the 3-digit codes now used by mobiles (033,
# 036-039, 052, 055, 056, 058, 059, 070, 076, 077, 079), since a 10-digit number
# with those prefixes is a mobile today; 0240/0241/0280/0281, which lie inside the
# new Ha Noi (024) and Ho Chi Minh City (028) number space; and the four provinces
# whose code did not change (0210, 0211, 0218, 0219).
# An old number was the old code + a 7-digit subscriber (8 digits after 04).
AREA_2017: dict[str, str] = {
    "04": "024",
    "020": "0214", "022": "0212", "025": "0205", "026": "0206", "027": "0207",
    "029": "0216", "030": "0229", "031": "0225", "053": "0233", "054": "0234",
    "057": "0257", "060": "0260", "061": "0251", "062": "0252", "063": "0263",
    "064": "0254", "066": "0276", "067": "0277", "068": "0259", "072": "0272",
    "073": "0273", "074": "0294", "075": "0275",
    "0230": "0215", "0231": "0213", "0320": "0220", "0321": "0221", "0350": "0228",
    "0351": "0226", "0500": "0262", "0501": "0261", "0510": "0235", "0511": "0236",
    "0650": "0274", "0651": "0271", "0710": "0292", "0711": "0293", "0780": "0290",
    "0781": "0291",
}

# Current landline area codes (the first digits of an 11-digit landline), all 63.
AREA_CODES: frozenset[str] = frozenset({
    "024", "028",
    "0203", "0204", "0205", "0206", "0207", "0208", "0209", "0210", "0211", "0212",
    "0213", "0214", "0215", "0216", "0218", "0219", "0220", "0221", "0222", "0225",
    "0226", "0227", "0228", "0229", "0232", "0233", "0234", "0235", "0236", "0237",
    "0238", "0239", "0251", "0252", "0254", "0255", "0256", "0257", "0258", "0259",
    "0260", "0261", "0262", "0263", "0269", "0270", "0271", "0272", "0273", "0274",
    "0275", "0276", "0277", "0290", "0291", "0292", "0293", "0294", "0296", "0297",
    "0299",
})

# Toll-free and premium numbers are dialled without the trunk 0 and have no E.164 form.
SERVICE_PREFIXES = ("1800", "1900")
SERVICE_LENGTHS = range(8, 11)  # 1800 xxxx to 1900 xxx xxx

# Emergency and public-service short numbers (police 113, fire 114, ambulance 115, and
# the 111/112 hotlines): dialled as they are, with no E.164 form.
EMERGENCY: frozenset[str] = frozenset({"111", "112", "113", "114", "115"})

# E.164 (ITU-T E.164 §6): a country code and a national number, 15 digits at most. The
# shortest numbers in use (small Pacific states) have 7 digits with the country code.
E164_LENGTHS = range(7, 16)

# Visual separators integrators put in numbers; Unicode spaces are removed as well.
_SEPARATORS = re.compile(r"[\s.\-()]+")
_PHONE = re.compile(r"\+?[0-9]{3,15}")


def _clean(number: str) -> str:
    return _SEPARATORS.sub("", number)


def compact(number: str) -> str:
    """``number`` without the separators integrators write (``028 7301-9555``)."""
    return _clean(number)


def is_phone_number(s: str) -> bool:
    """True for 3 to 15 digits with an optional leading ``+`` (separators ignored)."""
    return _PHONE.fullmatch(_clean(s)) is not None


def normalize(number: str) -> str:
    """The national form of ``number`` (``0901234567``, ``02873019555``, ``19001234``).

    Removes spaces, dots, dashes and parentheses; ``+84``/``0084``/``84`` become the
    trunk prefix 0 (also when written ``+84 (0)90...``); a leading 0 lost by a
    spreadsheet is restored for 9-digit mobiles and 10-digit landlines; the 2018
    mobile renumbering and the unambiguous part of the 2017 area-code change are
    applied. Service numbers (1800/1900, 113...) are kept as they are; a number in
    another country keeps its E.164 form (``+14155550100``). Other digit strings
    (extensions, short codes) come back as they are. Raises ``ValueError`` for
    anything that is not a number.
    """
    s = _clean(number)
    if not _PHONE.fullmatch(s):
        raise ValueError(f"{number!r} is not a phone number (3 to 15 digits, optional +).")
    international = s[1:] if s.startswith("+") else s[2:] if s.startswith("00") else None
    if international is not None:
        if not international.startswith("84"):
            if len(international) < 3:
                raise ValueError(f"{number!r} is not a phone number (country code too short).")
            return "+" + international
        national = international[2:].removeprefix("0")
        if len(national) < 8:  # the shortest, 1800 + 4 digits; 113 has no E.164 form
            raise ValueError(f"{number!r} is too short for a Vietnamese number after +84.")
        if not national.startswith(SERVICE_PREFIXES):
            national = "0" + national
    elif s.startswith("84") and len(s) in (11, 12):
        # 84 + a 9-digit mobile or a 10-digit landline, written without the +.
        national = "0" + s[2:]
    else:
        national = _restore_zero(s)
    return _renumber(national)


def _restore_zero(s: str) -> str:
    """Put back a leading 0 that a spreadsheet removed, where that is unambiguous."""
    if s.startswith("0") or s.startswith(SERVICE_PREFIXES):
        return s
    z = "0" + s
    if len(s) == 9 and z[:3] in MOBILE_PREFIXES:
        return z
    if len(s) == 10 and (z[:4] in MOBILE_2018 or z[:3] in AREA_CODES or z[:4] in AREA_CODES):
        return z
    return s


def _renumber(n: str) -> str:
    """Apply the 2018 mobile and 2017 landline renumberings to a national number."""
    if len(n) == 11 and n[:4] in MOBILE_2018:
        return MOBILE_2018[n[:4]] + n[4:]
    if len(n) == 10 and n[:2] in AREA_2017:  # 04 + 8 digits
        return AREA_2017[n[:2]] + n[2:]
    if len(n) == 10 and n[:3] in AREA_2017:  # 0xx + 7 digits
        return AREA_2017[n[:3]] + n[3:]
    if len(n) == 11 and n[:4] in AREA_2017:  # 0xxx + 7 digits
        return AREA_2017[n[:4]] + n[4:]
    return n


def dialable(number: str) -> str:
    """The national form of ``number`` if a carrier can be asked to call it.

    This is the one rule for outside numbers, shared by the Open API (click-to-call)
    and the dial plan: a Vietnamese mobile (10 digits with the 0, after the 2018
    renumbering), a landline (11 digits, one of the 63 area codes), a 1800/1900
    service number (8 to 10 digits), an emergency number (111 to 115), or a number in
    another country in E.164 form (``+`` or ``00``, 7 to 15 digits). Raises
    ``ValueError`` with one sentence saying what is wrong otherwise.
    """
    n = normalize(number)
    if n.startswith("+"):
        digits = n[1:]
        if digits.startswith("0") or len(digits) not in E164_LENGTHS:
            raise ValueError(
                f"{number!r} is not an international number (a country code and 7 to 15 "
                "digits in all).")
        return n
    if n in EMERGENCY:
        return n
    if n.startswith(SERVICE_PREFIXES):
        if len(n) not in SERVICE_LENGTHS:
            raise ValueError(f"{number!r} is not a 1800/1900 number (8 to 10 digits).")
        return n
    if len(n) == 10 and n[:3] in MOBILE_PREFIXES:
        return n
    if len(n) == 11 and (n[:3] in AREA_CODES or n[:4] in AREA_CODES):
        return n
    raise ValueError(
        f"{number!r} is not a number a carrier can call: expected a 10-digit mobile, an "
        "11-digit landline, a 1800/1900 number, 111 to 115, or + and a foreign number.")


def same_number(a: str, b: str) -> bool:
    """True when ``a`` and ``b`` normalise to the same number; False if either is not one."""
    try:
        return normalize(a) == normalize(b)
    except ValueError:
        return False
