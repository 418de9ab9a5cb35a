"""Personal data in prompts: patterns with checksums where the format has one. Pure functions.

Found: e-mail addresses, phone numbers, payment card numbers (Luhn-checked), IPv4 and IPv6
addresses, IBANs (ISO 7064 mod 97 checked), national-id-like numbers (US social security
numbers, UK national insurance numbers, numbers labelled as an ID or passport), and the names of
people a labeler marked. Patterns are tried in that priority order; a later pattern never
claims text an earlier one found (a card number is not also reported as a phone number).
"""

import ipaddress
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

KIND_LABELS = {
    "email": "e-mail address",
    "iban": "IBAN",
    "card": "payment card number",
    "national_id": "national ID number",
    "ip": "IP address",
    "phone": "phone number",
    "name": "name of a person",
}


@dataclass(frozen=True)
class Finding:
    kind: str
    text: str
    start: int
    end: int


def luhn_valid(digits: str) -> bool:
    total = 0
    for i, char in enumerate(reversed(digits)):
        value = int(char) * (2 if i % 2 else 1)
        total += value - 9 if value > 9 else value
    return total % 10 == 0


def iban_valid(text: str) -> bool:
    iban = text.replace(" ", "").upper()
    if not 15 <= len(iban) <= 34:
        return False
    rearranged = iban[4:] + iban[:4]
    return int("".join(str(int(c, 36)) for c in rearranged)) % 97 == 1


def _digits(text: str) -> str:
    return re.sub(r"\D", "", text)


def _is_card(text: str) -> bool:
    digits = _digits(text)
    return 13 <= len(digits) <= 19 and luhn_valid(digits)


def _is_phone(text: str) -> bool:
    digits = _digits(text)
    if not 9 <= len(digits) <= 15:
        return False
    # Dates, decimals and social-security-shaped numbers (checked by their own pattern).
    a_date_or_decimal = re.fullmatch(r"\d{4}-\d{2}-\d{2}|\d+\.\d+|\d{3}-\d{2}-\d{4}", text)
    # Book numbers (ISBN 978-3-16-148410-0) have several one-digit groups; phone numbers don't.
    one_digit_groups = len(re.findall(r"(?<!\d)\d(?!\d)", text))
    return not a_date_or_decimal and one_digit_groups < 2


def _is_ipv6(text: str) -> bool:
    if ("::" not in text and text.count(":") != 7) or not any(c.isdigit() for c in text):
        return False  # "a:b::c:d" is a valid address but, without a digit, hardly one
    try:
        ipaddress.IPv6Address(text)
    except ValueError:
        return False
    return True


def _is_ssn(text: str) -> bool:
    area, group, serial = text.split("-")
    return area not in {"000", "666"} and area[0] != "9" and group != "00" and serial != "0000"


_OCTET = r"(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"

# (kind, pattern, extra check on the matched text); the first group, if any, is the finding.
PATTERNS: list[tuple[str, re.Pattern[str], Callable[[str], bool] | None]] = [
    (
        "email",
        re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}"),
        None,
    ),
    (
        "iban",
        re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?\b"),
        iban_valid,
    ),
    ("card", re.compile(r"(?<![\d-])\d(?:[ -]?\d){12,18}(?![\d-])"), _is_card),
    ("national_id", re.compile(r"(?<![\d-])\d{3}-\d{2}-\d{4}(?![\d-])"), _is_ssn),
    (
        "national_id",
        re.compile(r"\b[A-CEGHJ-PR-TW-Z][A-CEGHJ-NPR-TW-Z] ?\d{2} ?\d{2} ?\d{2} ?[A-D]\b"),
        None,
    ),
    (
        "national_id",
        re.compile(
            r"(?i:\b(?:passport|national id|identity card|id number|id no\.?|"
            r"personalausweis|social security)\b)[\s:#.-]{0,5}(?:number|no\.?)?[\s:#]{0,3}"
            r"([A-Z0-9][A-Z0-9-]{5,19})"
        ),
        lambda text: any(c.isdigit() for c in text),
    ),
    ("ip", re.compile(rf"(?<![\d.]){_OCTET}(?:\.{_OCTET}){{3}}(?![\d.])"), None),
    ("ip", re.compile(r"(?<![\w:])[0-9A-Fa-f]{0,4}(?::[0-9A-Fa-f]{0,4}){2,7}(?![\w:])"), _is_ipv6),
    ("phone", re.compile(r"(?<![\w+])\+?\(?\d[\d ().-]{7,18}\d(?![\w])"), _is_phone),
]


def find_pii(text: str, names: Iterable[str] = ()) -> list[Finding]:
    """Personal data in `text`, in order of appearance; `names` are people a labeler marked."""
    patterns = list(PATTERNS)
    for name in sorted({n.strip() for n in names if n.strip()}, key=len, reverse=True):
        patterns.append(("name", re.compile(rf"(?i)(?<!\w){re.escape(name)}(?!\w)"), None))
    findings: list[Finding] = []
    taken: list[tuple[int, int]] = []
    for kind, pattern, check in patterns:
        for match in pattern.finditer(text):
            group = 1 if pattern.groups else 0
            start, end = match.span(group)
            found = match.group(group)
            if check and not check(found):
                continue
            if any(start < t_end and t_start < end for t_start, t_end in taken):
                continue
            taken.append((start, end))
            findings.append(Finding(kind, found, start, end))
    return sorted(findings, key=lambda f: f.start)


def redact(text: str, names: Iterable[str] = ()) -> str:
    """The text with each finding replaced by its kind in brackets, e.g. [EMAIL]."""
    for finding in reversed(find_pii(text, names)):
        text = text[: finding.start] + f"[{finding.kind.upper()}]" + text[finding.end :]
    return text
