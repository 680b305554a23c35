"""What each unit's desk may see of the complainant, as data.

A desk sees what its work needs (brief, "Data protection"): the police and the visitor centre must
identify and reach the person (ID check, 信访 registration), mediation and legal aid call them back, the
command centre coordinates and needs only to know who it is about. Anything not listed is not shown.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType
from typing import Any

from shared.domain.masks import MASKERS, masked
from shared.domain.triage import Unit

__all__ = ["DISCLOSURE", "PERSONAL_KEYS", "Disclosure", "Visibility", "disclose", "in_full", "masked", "masked_view",
           "may_reveal"]


class Visibility(StrEnum):
    FULL = "full"
    MASKED = "masked"
    HIDDEN = "hidden"


@dataclass(frozen=True, slots=True)
class Disclosure:
    name: Visibility
    phone: Visibility
    id_number: Visibility


# Keys never shown from a timeline entry's detail, however it was written.
PERSONAL_KEYS = frozenset({"complainant", "complainant_key", "name", "phone", "id_number"})

V = Visibility
DISCLOSURE: Mapping[Unit, Disclosure] = MappingProxyType({
    Unit.POLICE: Disclosure(name=V.FULL, phone=V.FULL, id_number=V.FULL),
    Unit.VISITOR: Disclosure(name=V.FULL, phone=V.FULL, id_number=V.FULL),
    Unit.MEDIATION: Disclosure(name=V.FULL, phone=V.FULL, id_number=V.MASKED),
    Unit.LEGAL: Disclosure(name=V.FULL, phone=V.FULL, id_number=V.MASKED),
    Unit.COMMAND: Disclosure(name=V.FULL, phone=V.MASKED, id_number=V.MASKED),
})

def in_full(unit: Unit) -> list[str]:
    """The fields `unit` sees in full: the only ones its reveal decrypts."""
    policy = DISCLOSURE[unit]
    return [field for field in MASKERS if getattr(policy, field) is Visibility.FULL]


def masked_view(case: Mapping[str, Any]) -> dict[str, str] | None:
    """The masked complainant every desk sees first, as stored beside the encrypted values (a case stored before
    encryption is masked here)."""
    stored = case.get("complainant_masked")
    return dict(stored) if isinstance(stored, Mapping) else masked(case.get("complainant"))


def disclose(complainant: Mapping[str, Any] | None, unit: Unit,
             shown_masked: Mapping[str, Any] | None = None) -> dict[str, str] | None:
    """The complainant as `unit` may see them: in full from `complainant` (in the clear), masked from
    `shown_masked` or else masked here; unknown fields are dropped, never passed through."""
    if not complainant and not shown_masked:
        return None
    policy = DISCLOSURE[unit]
    shown: dict[str, str] = {}
    for field, masker in MASKERS.items():
        visibility: Visibility = getattr(policy, field)
        value = (complainant or {}).get(field)
        if visibility is Visibility.FULL and isinstance(value, str) and value:
            shown[field] = value
        elif visibility is Visibility.MASKED and isinstance(kept := (shown_masked or {}).get(field), str) and kept:
            shown[field] = kept
        elif visibility is Visibility.MASKED and isinstance(value, str) and value:
            shown[field] = masker(value)
    return shown


def may_reveal(unit: Unit) -> bool:
    """Whether revealing shows this unit more than the masked view."""
    policy = DISCLOSURE[unit]
    return Visibility.FULL in (policy.name, policy.phone, policy.id_number)
