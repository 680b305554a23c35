"""The complainant as every desk first sees them, each field masked: the store keeps this view beside the
encrypted values, so showing a case decrypts nothing."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any

from shared.domain.repeats import mask_id_number, mask_phone


def mask_name(name: str) -> str:
    """A name has no standard mask shape: keep only the family name's first character."""
    return name[:1] + "*" * max(len(name) - 1, 1)


MASKERS: Mapping[str, Callable[[str], str]] = MappingProxyType({
    "name": mask_name,
    "phone": mask_phone,
    "id_number": mask_id_number,
})


def masked(complainant: Mapping[str, Any] | None) -> dict[str, str] | None:
    """Each field masked; what is not a plain string (an encrypted value) is left out."""
    if not complainant:
        return None
    return {field: masker(value) for field, masker in MASKERS.items()
            if isinstance(value := complainant.get(field), str) and value}
