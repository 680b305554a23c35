"""What each unit's desk may see of the complainant, as data.

A desk sees what its work needs (brief, "Data protection"): the police and the visitor centre must
identify and reach the person (ID check, 信访 registration), mediation and legal aid call them back, the
command centre coordinates and needs only to know who it is about. Anything not listed is not shown.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType
from typing import Any

from shared.domain.repeats import mask_id_number, mask_phone
from shared.domain.triage import Unit


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

# A name has no standard mask shape; should a policy ask for one, keep only the family name.
_MASKERS: Mapping[str, Callable[[str], str]] = MappingProxyType({
    "name": lambda name: name[:1] + "*" * max(len(name) - 1, 1),
    "phone": mask_phone,
    "id_number": mask_id_number,
})


def disclose(complainant: Mapping[str, Any] | None, unit: Unit) -> dict[str, str] | None:
    """The complainant as `unit` may see them; unknown fields are dropped, never passed through."""
    if not complainant:
        return None
    policy = DISCLOSURE[unit]
    shown: dict[str, str] = {}
    for field, masker in _MASKERS.items():
        value = complainant.get(field)
        if not isinstance(value, str) or not value:
            continue
        visibility: Visibility = getattr(policy, field)
        if visibility is Visibility.FULL:
            shown[field] = value
        elif visibility is Visibility.MASKED:
            shown[field] = masker(value)
    return shown


def masked(complainant: Mapping[str, Any] | None) -> dict[str, str] | None:
    """The complainant as every desk first sees them: each field masked, whatever the unit may reveal."""
    if not complainant:
        return None
    return {field: masker(value) for field, masker in _MASKERS.items()
            if isinstance(value := complainant.get(field), str) and value}


def may_reveal(unit: Unit) -> bool:
    """Whether revealing shows this unit more than the masked view."""
    policy = DISCLOSURE[unit]
    return Visibility.FULL in (policy.name, policy.phone, policy.id_number)
