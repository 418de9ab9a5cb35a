"""The PII filter on a corpus of texts that contain personal data and texts that look like it."""

import pytest

from app.services.pii import find_pii, iban_valid, luhn_valid, redact

TRUE_POSITIVES = [
    ("Mail me at jane.doe@example.com please", "email", "jane.doe@example.com"),
    ("write to first.last+tag@mail.co.uk", "email", "first.last+tag@mail.co.uk"),
    ("Call +44 20 7946 0958 today", "phone", "+44 20 7946 0958"),
    ("my number is (555) 123-4567", "phone", "(555) 123-4567"),
    ("ring +1 555 123 4567 after six", "phone", "+1 555 123 4567"),
    ("tel. 030 1234 5678", "phone", "030 1234 5678"),
    ("card 4111 1111 1111 1111 exp 12/27", "card", "4111 1111 1111 1111"),
    ("amex 378282246310005", "card", "378282246310005"),
    ("pay with 5555-5555-5555-4444", "card", "5555-5555-5555-4444"),
    ("the server 192.168.1.20 is down", "ip", "192.168.1.20"),
    ("ping 8.8.8.8", "ip", "8.8.8.8"),
    ("ipv6 2001:db8::8a2e:370:7334 here", "ip", "2001:db8::8a2e:370:7334"),
    ("IBAN DE89 3704 0044 0532 0130 00", "iban", "DE89 3704 0044 0532 0130 00"),
    ("send to GB82WEST12345698765432", "iban", "GB82WEST12345698765432"),
    ("SSN 123-45-6789", "national_id", "123-45-6789"),
    ("NINO AB 12 34 56 C", "national_id", "AB 12 34 56 C"),
    ("passport number X1234567", "national_id", "X1234567"),
    ("my ID number: 1985-0412-77", "national_id", "1985-0412-77"),
]

FALSE_POSITIVES = [
    "Write a poem about 2023 in 120 words.",
    "The meeting is on 2024-01-15 at 12:30:45.",
    "Upgrade from version 1.2.3 to 1.2.4.",
    "Pi is about 3.14159265358979.",
    "ISBN 978-3-16-148410-0 is a book number.",
    "The price rose to 1,234,567.89 dollars.",
    "card 4111 1111 1111 1112 fails the Luhn check",
    "IBAN DE89 3704 0044 0532 0130 01 has a bad checksum",
    "SSN 000-12-3456 is not issued",
    "Use the @decorator syntax in Python.",
    "Compare a:b::c:d analogies.",
    "Count from 1 to 10, then from 10 to 100.",
    "Rewrite this: 'The quick brown fox jumps over the lazy dog.'",
    "Summarize chapter 12, pages 340-365.",
]


@pytest.mark.parametrize(("text", "kind", "found"), TRUE_POSITIVES)
def test_personal_data_is_found(text: str, kind: str, found: str) -> None:
    assert [(f.kind, f.text) for f in find_pii(text)] == [(kind, found)]


@pytest.mark.parametrize("text", FALSE_POSITIVES)
def test_look_alikes_are_not_flagged(text: str) -> None:
    assert find_pii(text) == []


def test_names_a_labeler_marked_are_found_in_any_case() -> None:
    findings = find_pii("Ask anna smith, or Anna Smith's brother.", names=["Anna Smith"])
    assert [f.text for f in findings] == ["anna smith", "Anna Smith"]


def test_a_card_number_is_not_also_reported_as_a_phone_number() -> None:
    assert [f.kind for f in find_pii("4111 1111 1111 1111")] == ["card"]


def test_redaction_replaces_each_finding_by_its_kind() -> None:
    text = "Bob (bob@example.com, +44 20 7946 0958) paid with 4111111111111111."
    assert redact(text, names=["Bob"]) == "[NAME] ([EMAIL], [PHONE]) paid with [CARD]."


def test_luhn_and_iban_checksums() -> None:
    assert luhn_valid("79927398713") and not luhn_valid("79927398710")
    assert iban_valid("NL91ABNA0417164300") and not iban_valid("NL91ABNA0417164301")
