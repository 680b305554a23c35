"""The words the desks, the supervisors and the upstream systems read, in one place: every page and answer
says 签收, 退单, 办结 the same way."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from shared.domain.figures import Figure, Measure
from shared.domain.lifecycle import Action, CaseStatus, Satisfaction
from shared.domain.triage import Category, RiskFlag, Unit, Urgency
from shared.events import Channel


def _frozen(values: Mapping[str, str]) -> Mapping[str, str]:
    return MappingProxyType(dict(values))


UNITS = _frozen({
    Unit.POLICE: "公安派出所", Unit.MEDIATION: "矛盾纠纷调处中心", Unit.VISITOR: "人民来访中心",
    Unit.LEGAL: "公共法律服务中心", Unit.COMMAND: "镇域指挥中心",
})
STATUSES = _frozen({
    CaseStatus.RECEIVED: "已受理", CaseStatus.CLASSIFIED: "已分类", CaseStatus.ROUTED: "待签收",
    CaseStatus.ACCEPTED: "已签收", CaseStatus.IN_PROGRESS: "办理中", CaseStatus.RESOLVED: "已办结待回访",
    CaseStatus.RETURN_VISIT: "回访中", CaseStatus.CLOSED: "已结案", CaseStatus.RETURNED: "已退单",
    CaseStatus.ESCALATED: "督办中", CaseStatus.REOPENED: "重办",
})
URGENCIES = _frozen({Urgency.CRITICAL: "特急", Urgency.HIGH: "紧急", Urgency.NORMAL: "一般", Urgency.LOW: "较缓"})
CATEGORIES = _frozen({
    Category.FAMILY: "婚姻家庭", Category.NEIGHBOR: "邻里纠纷", Category.PROPERTY_LAND: "土地山林权属",
    Category.CONTRACT_DEBT: "合同债务", Category.LABOR: "劳动争议", Category.CONSUMER: "消费纠纷",
    Category.PROPERTY_MGMT: "物业纠纷", Category.TRAFFIC_ACCIDENT: "交通事故", Category.MEDICAL: "医疗纠纷",
    Category.DAMAGES: "损害赔偿", Category.LAND_REQUISITION: "征地拆迁", Category.ENVIRONMENT: "环境污染",
    Category.PUBLIC_SECURITY: "治安问题", Category.FRAUD: "诈骗", Category.ADMIN_COMPLAINT: "行政投诉",
    Category.LEGAL_AID: "法律援助", Category.URBAN_MANAGEMENT: "城市管理", Category.SAFETY_HAZARD: "安全隐患",
    Category.OTHER: "其他",
})
CHANNELS = _frozen({
    Channel.HOTLINE_12345: "12345 热线", Channel.POLICE_110: "110 非警务警情", Channel.LEGAL_12348: "12348 法律热线",
    Channel.LETTER: "来信", Channel.WALK_IN: "来访", Channel.ONLINE: "网上信访", Channel.GRID: "网格员上报",
})
RISK_FLAGS = _frozen({
    RiskFlag.VIOLENCE: "暴力威胁", RiskFlag.SELF_HARM: "自伤自杀", RiskFlag.DOMESTIC_VIOLENCE: "家庭暴力",
    RiskFlag.COLLECTIVE_ACTION: "群体性", RiskFlag.ESCALATION_THREAT: "扬言越级",
    RiskFlag.VULNERABLE_PERSON: "弱势群体",
    RiskFlag.MANY_AFFECTED: "涉及人数多", RiskFlag.LARGE_SUM: "涉案金额大", RiskFlag.WAGE_ARREARS_FESTIVAL: "节前欠薪",
    RiskFlag.DANGER_NOW: "现实危险", RiskFlag.REPEATED: "重复投诉",
})
ACTIONS = _frozen({
    Action.ACCEPT: "签收", Action.PROGRESS_NOTE: "进展", Action.HAND_BACK: "退单",
    Action.REQUEST_EXTENSION: "申请延期", Action.RECORD_AGREEMENT: "调解协议", Action.RESOLVE: "办结答复",
    Action.RETURN_VISIT: "回访", Action.ESCALATE: "督办/上报", Action.CLASSIFY: "分类", Action.ROUTE: "派单",
    Action.START_RETURN_VISIT: "开始回访",
})
SATISFACTION = _frozen({
    Satisfaction.SATISFIED: "满意", Satisfaction.BASICALLY_SATISFIED: "基本满意", Satisfaction.DISSATISFIED: "不满意",
})
TIMELINE = _frozen({
    "received": "受理", "merged": "重复来件合并", "linked": "一单多诉关联", "classified": "智能分类", "routed": "派单",
    "deadline_opened": "时限起算", "deadline_extended": "时限延长", "action_rejected": "处置被拒",
    "reminder": "到期提醒", "overdue": "超期", "escalated": "超期督办", "critical_elsewhere": "特急案件告警指挥中心",
    **ACTIONS,  # a desk's action is written on the timeline under the action's own name
})
REASON_KINDS = _frozen({
    "rule": "规则", "model": "模型", "override": "人身安全优先", "policy": "派单策略", "negation": "否定语境",
    "review": "需人工复核", "danger": "危险线索", "danger_dismissed": "已排除的危险线索",
})
# 退单 reasons a desk picks from; free text adds the particulars.
HANDBACK_REASONS = (
    "不属于本单位职责", "诉求应由其他部门先行处理", "已进入诉讼或仲裁程序", "地址不在本辖区", "信息不全无法办理",
)
DEADLINE_RULES = _frozen({
    "visitor.accept": "信访受理告知", "visitor.resolve": "信访事项办理", "visitor.extension": "信访延期办理",
    "visitor.review": "复查复核", "legal_aid.decision": "法律援助审查决定", "mediation.resolve": "调解终结",
    "hotline.consult": "热线咨询答复", "hotline.help": "热线求助办理", "hotline.complaint": "热线投诉办理",
})
FIGURES = _frozen({
    Figure.RESPONSE: "响应率", Figure.RESOLUTION: "解决率", Figure.SATISFACTION: "满意率", Figure.ON_TIME: "按时办结率",
    Figure.VISITED: "回访率", Figure.REPEATS: "重复投诉率", Figure.HANDED_BACK: "退单率", Figure.REOPENED: "重办率",
    Figure.MEDIATION_SUCCESS: "调解成功率",
})
MEASURES = _frozen({
    Measure.RECEIVED: "受理", Measure.REPEATS: "重复来件", Measure.ROUTED: "派单", Measure.ACCEPTED: "签收",
    Measure.ACCEPTED_IN_TIME: "按时签收", Measure.HANDED_BACK: "退单", Measure.RESOLVED: "办结",
    Measure.RESOLVED_IN_TIME: "按时办结", Measure.MEDIATION_CONCLUDED: "调解终结", Measure.MEDIATION_AGREED: "调解成功",
    Measure.AGREEMENTS: "调解协议", Measure.VISITED: "回访", Measure.VISITS_ASKED_SOLVED: "回访问及解决",
    Measure.VISITS_SOLVED: "回访已解决", Measure.VISITS_SATISFIED: "回访满意", Measure.VISITS_BASICALLY: "基本满意",
    Measure.VISITS_DISSATISFIED: "不满意", Measure.CLOSED: "结案",
    Measure.REOPENED: "重办", Measure.ESCALATED: "督办", Measure.OVERDUE: "新增超期",
})
SPLIT_KEYS = _frozen({"unclassified": "未分类", **CATEGORIES, **CHANNELS})
OUTCOMES = _frozen({"submitted": "已提交，待处理", "applied": "已生效", "rejected": "被拒绝"})


def label(table: Mapping[str, str], value: object) -> str:
    """The Chinese word for a value, or the value itself when the table does not know it."""
    if value is None:
        return "—"
    return table.get(str(value), str(value))
