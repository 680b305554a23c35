"""The action forms of the case page: which actions a desk may take now, their fields, and what is wrong
with a filled-in form, field by field, in the desks' words. No I/O."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from pydantic import ValidationError

from shared.domain.lifecycle import DESK_ACTIONS, Action, CaseStatus, CaseView, TransitionRejected, check_desk_action
from shared.domain.lifecycle import Satisfaction as Sat
from shared.domain.triage import Unit
from shared.events import DeskActionPayload
from shared.labels import ACTIONS, HANDBACK_REASONS, SATISFACTION


@dataclass(frozen=True, slots=True)
class Field:
    name: str  # the form field, as posted
    label: str
    kind: str  # "text" (one line), "textarea", "number", "select", "radio"
    required: bool = False
    choices: tuple[tuple[str, str], ...] = ()  # (value, label)
    hint: str = ""


_ANSWER = Field("note", "答复内容", "textarea", True, hint="将答复给来电人/来访人的内容")
FORMS: Mapping[Action, tuple[Field, ...]] = {
    Action.ACCEPT: (Field("note", "签收备注", "text"),),
    Action.PROGRESS_NOTE: (Field("note", "进展情况", "textarea", True),),
    Action.HAND_BACK: (
        Field("reason_choice", "退单原因", "select", True, tuple((r, r) for r in HANDBACK_REASONS)),
        Field("reason_text", "具体说明", "textarea", hint="例如应由哪个单位办理"),
    ),
    Action.REQUEST_EXTENSION: (
        Field("reason", "延期理由", "textarea", True),
        Field("extension_days", "延长天数", "number", hint="1 至 30 天；不填按规定最长期限"),
    ),
    Action.RECORD_AGREEMENT: (
        Field("note", "协议内容", "textarea", True),
        Field("amount", "协议金额（元）", "number", hint="无金额可不填"),
    ),
    Action.RESOLVE: (_ANSWER,),
    Action.RETURN_VISIT: (
        Field("solved", "问题是否解决", "radio", True, (("yes", "已解决"), ("no", "未解决"))),
        Field("satisfaction", "回访评价", "radio", True, tuple((s.value, SATISFACTION[s]) for s in Sat)),
        Field("note", "回访记录", "textarea"),
    ),
    Action.ESCALATE: (Field("note", "督办事由", "textarea", True),),
}
ORDER = (Action.ACCEPT, Action.PROGRESS_NOTE, Action.REQUEST_EXTENSION, Action.RECORD_AGREEMENT, Action.RESOLVE,
         Action.RETURN_VISIT, Action.HAND_BACK, Action.ESCALATE)
assert set(ORDER) == set(DESK_ACTIONS) == set(FORMS)


def available(status: CaseStatus, unit: Unit, extension_used: bool) -> list[Action]:
    """The actions the state machine would allow this desk now, asked of the state machine itself."""
    view = CaseView(status=status, unit=unit.value, extension_used=extension_used)
    allowed = []
    for action in ORDER:
        try:
            check_desk_action(view, unit=unit.value, action=action, reason="-", answer="-",
                              satisfaction=Sat.SATISFIED if action is Action.RETURN_VISIT else None)
        except TransitionRejected:
            continue
        allowed.append(action)
    return allowed


class FormErrors(Exception):
    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__(", ".join(errors))
        self.errors = errors


_TOO_LONG = {"note": 2000, "reason": 500, "reason_text": 480}


def parse_form(action: Action, form: Mapping[str, str], unit: Unit, actor: str) -> DeskActionPayload:
    """The payload a filled-in form asks for, or FormErrors naming each field that is wrong."""
    values = {name: form.get(name, "").strip() for name in (f.name for f in FORMS[action])}
    errors: dict[str, str] = {}
    for field in FORMS[action]:
        if field.required and not values[field.name]:
            errors[field.name] = f"请填写{field.label}" if field.kind != "select" else f"请选择{field.label}"
        elif len(values[field.name]) > _TOO_LONG.get(field.name, 2000):
            errors[field.name] = f"{field.label}不能超过 {_TOO_LONG.get(field.name, 2000)} 字"
        elif field.choices and values[field.name] and values[field.name] not in dict(field.choices):
            errors[field.name] = f"请从列表中选择{field.label}"
    fields: dict[str, object] = {}
    if values.get("note"):
        fields["note"] = values["note"]
    if action is Action.HAND_BACK and values["reason_choice"]:
        fields["reason"] = "：".join(v for v in (values["reason_choice"], values["reason_text"]) if v)
    if action is Action.REQUEST_EXTENSION:
        fields["reason"] = values["reason"] or None
        if values["extension_days"]:
            if not values["extension_days"].isdigit() or not 1 <= int(values["extension_days"]) <= 30:
                errors["extension_days"] = "延长天数须为 1 至 30 的整数"
            else:
                fields["extension_days"] = int(values["extension_days"])
    if action is Action.RECORD_AGREEMENT and values["amount"]:
        try:
            amount = Decimal(values["amount"].replace(",", ""))
        except InvalidOperation:
            amount = Decimal(-1)
        if not amount.is_finite() or amount < 0 or amount != amount.quantize(Decimal("0.01")) or amount >= 10**10:
            errors["amount"] = "金额须为不小于 0 的数字，最多两位小数"
        else:
            fields["amount"] = amount
    if action is Action.RETURN_VISIT and values["satisfaction"]:
        fields["satisfaction"] = values["satisfaction"]
    if action is Action.RETURN_VISIT and values["solved"]:
        fields["solved"] = values["solved"] == "yes"
    if errors:
        raise FormErrors(errors)
    try:
        return DeskActionPayload.model_validate({"unit": unit, "action": action, "actor": actor, **fields})
    except ValidationError as exc:
        where = str(exc.errors()[0]["loc"][0]) if exc.errors() and exc.errors()[0]["loc"] else "note"
        raise FormErrors({where: f"{ACTIONS[action]}的内容含有不允许的字符"}) from None
