"""Repeat-report detection and masking of personal data.

A repeat is the same matter reported again: by the same complainant (a keyed hash of the phone
number, so the number itself is never stored or compared) with similar text, or by anyone with
near-identical text. Text similarity is MinHash over character shingles, which suits Chinese
(no word segmentation needed) and gives fixed-size signatures that can be stored with the case.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from functools import lru_cache

logger = logging.getLogger(__name__)

# --- complainant key ---------------------------------------------------------------------------------


def normalise_phone(phone: str) -> str:
    """Digits only, without the China country code, so that +86 and domestic forms agree."""
    digits = "".join(ch for ch in unicodedata.normalize("NFKC", phone) if ch.isdigit() and ch.isascii())
    national: str | None = None
    if phone.lstrip().startswith("+86") or (phone.lstrip().startswith("+") and digits.startswith("86")):
        national = digits[2:]
    elif digits.startswith("0086"):
        national = digits[4:]
    elif digits.startswith("86") and len(digits) == 13 and digits[2] == "1":
        # 86 + an 11-digit mobile; an 8-digit local landline may itself start with 86, so only this shape.
        national = digits[2:]
    if national is None:
        return digits
    # International form drops the trunk 0 of a landline area code; put it back to match domestic input.
    return national if national.startswith("1") or national.startswith("0") else "0" + national


def complainant_key(phone: str, secret: bytes) -> str:
    """HMAC-SHA256 (hex) of the normalised phone number. Without the secret it cannot be reversed by
    enumerating the small space of phone numbers."""
    if not secret:
        raise ValueError("complainant_key needs a non-empty secret")
    digits = normalise_phone(phone)
    if not digits:
        raise ValueError("phone number has no digits")  # the value itself is never echoed
    return hmac.new(secret, b"phone:" + digits.encode("ascii"), hashlib.sha256).hexdigest()


# --- MinHash -----------------------------------------------------------------------------------------

_PRIME = (1 << 61) - 1  # Mersenne prime for universal hashing; results fit a signed 64-bit BSON int
EMPTY = _PRIME  # signature value for text with no shingles; never produced by a real shingle


def normalise_text(text: str) -> str:
    """Fold full-width to half-width (NFKC), lower-case, keep only letters, digits and marks."""
    folded = unicodedata.normalize("NFKC", text).casefold()
    return "".join(ch for ch in folded if unicodedata.category(ch)[0] in "LNM")


def shingles(text: str, size: int = 3) -> set[str]:
    if size < 1:
        raise ValueError("shingle size must be >= 1")
    norm = normalise_text(text)
    if not norm:
        return set()
    if len(norm) <= size:
        return {norm}
    return {norm[i : i + size] for i in range(len(norm) - size + 1)}


@lru_cache(maxsize=8)
def _permutations(num_perm: int) -> tuple[tuple[int, int], ...]:
    # Fixed, seedless coefficients derived from blake2b: identical in every process and version.
    coeffs = []
    for i in range(num_perm):
        h = hashlib.blake2b(f"grievance-minhash-perm-{i}".encode(), digest_size=16).digest()
        a = int.from_bytes(h[:8], "big") % (_PRIME - 1) + 1
        b = int.from_bytes(h[8:], "big") % _PRIME
        coeffs.append((a, b))
    return tuple(coeffs)


def _shingle_hash(shingle: str) -> int:
    # blake2b, not hash(): Python's str hash is salted per process.
    return int.from_bytes(hashlib.blake2b(shingle.encode("utf-8"), digest_size=8).digest(), "big") % _PRIME


def minhash_signature(text: str, num_perm: int = 64, shingle: int = 3) -> list[int]:
    """MinHash of the text's character shingles; every value is in [0, 2**61 - 1]."""
    if num_perm < 1:
        raise ValueError("num_perm must be >= 1")
    hashes = [_shingle_hash(s) for s in shingles(text, shingle)]
    if not hashes:
        return [EMPTY] * num_perm
    return [min((a * h + b) % _PRIME for h in hashes) for a, b in _permutations(num_perm)]


def similarity(sig_a: Sequence[int], sig_b: Sequence[int]) -> float:
    """Estimated Jaccard similarity; empty texts are similar to nothing."""
    if len(sig_a) != len(sig_b):
        raise ValueError(f"signatures differ in length ({len(sig_a)} vs {len(sig_b)})")
    if not sig_a:
        return 0.0
    same = sum(1 for x, y in zip(sig_a, sig_b, strict=True) if x == y and x != EMPTY)
    return same / len(sig_a)


# --- matching ----------------------------------------------------------------------------------------


class MatchReason(StrEnum):
    SAME_COMPLAINANT = "same_complainant"  # same phone key and text at least loosely similar
    SIMILAR_TEXT = "similar_text"  # any complainant, near-identical text


@dataclass(frozen=True, slots=True)
class CaseFingerprint:
    """What repeat detection needs of a case; received_at naive means UTC (as pymongo returns it)."""

    case_id: str
    complainant_key: str | None
    signature: Sequence[int]
    received_at: datetime


@dataclass(frozen=True, slots=True)
class RepeatThresholds:
    # Measured on 3-shingles: a paraphrase of the same matter scores ~0.1-0.2, unrelated texts ~0-0.07,
    # a copy with changed punctuation 1.0. The same caller needs little textual evidence; a stranger much.
    same_complainant: float = 0.2
    any_complainant: float = 0.8

    def __post_init__(self) -> None:
        if not 0.0 <= self.same_complainant <= self.any_complainant <= 1.0:
            raise ValueError("thresholds must satisfy 0 <= same_complainant <= any_complainant <= 1")


@dataclass(frozen=True, slots=True)
class RepeatMatch:
    case_id: str
    similarity: float
    reason: MatchReason


DEFAULT_WINDOW = timedelta(days=30)
DEFAULT_THRESHOLDS = RepeatThresholds()


def _utc(when: datetime) -> datetime:
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when


def find_repeat(
    candidate: CaseFingerprint,
    open_cases: Iterable[CaseFingerprint],
    window: timedelta = DEFAULT_WINDOW,
    thresholds: RepeatThresholds = DEFAULT_THRESHOLDS,
) -> RepeatMatch | None:
    """The open case that `candidate` repeats, or None.

    A case matches if it was received within `window` of the candidate (either side, so late or
    reordered events still match) and either it has the same complainant key with similarity
    >= `thresholds.same_complainant`, or any key with similarity >= `thresholds.any_complainant`.
    The best match is the most similar; ties go to the same complainant, then the most recent case.
    """
    at = _utc(candidate.received_at)
    best: tuple[float, bool, datetime, str] | None = None
    best_match: RepeatMatch | None = None
    for case in open_cases:
        if case.case_id == candidate.case_id:
            continue
        received = _utc(case.received_at)
        if abs(received - at) > window:
            continue
        if len(case.signature) != len(candidate.signature):
            # Stored with other MinHash settings: not comparable. Only the id is logged (no personal data).
            logger.warning("case %s has a signature of another length; skipped", case.case_id)
            continue
        sim = similarity(candidate.signature, case.signature)
        same = candidate.complainant_key is not None and case.complainant_key == candidate.complainant_key
        if same and sim >= thresholds.same_complainant:
            reason = MatchReason.SAME_COMPLAINANT
        elif sim >= thresholds.any_complainant:
            reason = MatchReason.SIMILAR_TEXT
        else:
            continue
        rank = (sim, same, received, case.case_id)
        if best is None or rank > best:
            best, best_match = rank, RepeatMatch(case.case_id, sim, reason)
    return best_match


# --- masking -----------------------------------------------------------------------------------------


def _mask(value: str, keep_head: int, keep_tail: int) -> str:
    hidden = len(value) - keep_head - keep_tail
    if hidden >= 4:
        return value[:keep_head] + "*" * hidden + value[len(value) - keep_tail :]
    # Too short to hide enough in the usual shape: show at most the last two characters.
    tail = 2 if len(value) > 2 else 0
    return "*" * (len(value) - tail) + value[len(value) - tail :]


def mask_phone(phone: str) -> str:
    """`13812345678` -> `138****5678`: first 3 and last 4 digits of the national number."""
    return _mask(normalise_phone(phone), 3, 4)


def mask_id_number(id_number: str) -> str:
    """Resident ID: first 3 and last 4 characters kept (`110***********123X`), the rest masked."""
    cleaned = "".join(unicodedata.normalize("NFKC", id_number).split()).upper()
    return _mask(cleaned, 3, 4)



# --- what intake stores and looks up ------------------------------------------------------------------

SIGNATURE_SHINGLE = 2  # 2-character shingles: paraphrases of one matter score 0.15-0.3, unrelated texts < 0.1


def text_signature(text: str) -> list[int]:
    """The signature intake stores with a case and compares repeat reports against."""
    return minhash_signature(text, shingle=SIGNATURE_SHINGLE)


def repeat_keys(complainant: str | None, text: str) -> list[str]:
    """The keys under which an open case is found again: who reported it, and the exact words (the same
    letter sent through two channels). No key carries personal data: the first is already a keyed hash."""
    keys = [f"text:{hashlib.sha256(normalise_text(text).encode()).hexdigest()[:32]}"]
    if complainant:
        keys.insert(0, f"who:{complainant}")
    return keys


MAX_KEYED_CASES = 50  # how many recent cases a repeat key remembers: a flood from one number stays cheap


@lru_cache(maxsize=4096)
def signature_of(text: str) -> tuple[int, ...]:
    """A case's text never changes: a flood of reports compared with the same open cases hashes each once."""
    return tuple(text_signature(text))
