"""Amounts of money and counts of people in Chinese text: 3000块, 两万八, 1.2万元, 50万, 一百多名工人.

Callers write numbers every way at once (Arabic, Chinese, mixed, with 多/几/来), so the parser is
lenient and returns the lower bound of vague numbers ("一百多" = 100, "几十" = 20): a threshold is
then crossed only when the text really says so.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_DIGITS = {
    "零": 0, "〇": 0, "一": 1, "幺": 1, "二": 2, "两": 2, "俩": 2, "三": 3, "仨": 3, "四": 4, "五": 5,
    "六": 6, "七": 7, "八": 8, "九": 9, "壹": 1, "贰": 2, "叁": 3, "肆": 4, "伍": 5, "陆": 6,
    "柒": 7, "捌": 8, "玖": 9, "几": 2,
}  # fmt: skip
_SMALL_UNITS = {"十": 10, "拾": 10, "百": 100, "佰": 100, "千": 1000, "仟": 1000}
_BIG_UNITS = {"万": 10_000, "萬": 10_000, "亿": 100_000_000}
_ASCII_UNITS = {"w": 10_000, "k": 1000}
_CN_CHARS = "".join(_DIGITS) + "".join(_SMALL_UNITS) + "".join(_BIG_UNITS)

# Vague quantities callers use instead of numbers (lower bounds).
_VAGUE = {"上百": 100, "成百": 100, "数百": 200, "几百": 200, "上千": 1000, "成千": 1000, "数千": 2000,
          "几千": 2000, "上万": 10_000, "数万": 20_000, "几万": 20_000, "好几万": 20_000, "十几万": 100_000,
          "几十万": 200_000, "上百万": 1_000_000, "数十": 20, "几十": 20, "好几十": 20}  # fmt: skip

NUMBER_RE = re.compile(
    rf"(?P<num>\d+(?:\.\d+)?|[{_CN_CHARS}]+)(?P<approx>多|余|来)?(?P<unit>[万萬千百wk](?![a-z]))?"
    rf"(?P<tail>[一二两三四五六七八九\d](?![{_CN_CHARS}\d]))?"
)

_CURRENCY_RE = re.compile(r"\s*(?:多|余)?(?:元|块钱|块|圆|人民币|rmb|¥)")
# Measure words that make a number something other than money.
_NOT_MONEY_RE = re.compile(
    r"\s*(?:多|余|来)?(?:人|名|户|家|个|位|口|岁|年|月|号|日|天|周|次|回|趟|亩|平|米|斤|公斤|吨|克|公里|里|楼|层|栋|幢|"
    r"小时|分钟|分|秒|点|辆|台|部|头|只|条|间|套|本|张|倍|%|度|级|期|批|项|件|届|座|所|棵|株|箱|袋|瓶|包|班|路|单元|室)"
)
# Words within a few characters before a bare number that say it is money.
_MONEY_CUE_RE = re.compile(
    r"(?:钱|款|费|资|薪|欠|借|扣|骗|转|汇|赔|付|花|交|损失|价|金|额|补偿|补贴|贷|收|还|要|给|赚|亏|值|卖|买|充|退|投|共|计)"
)
# ...or right after it ("1万2的工资", "三千的货款").
_MONEY_AFTER_RE = re.compile(r"\s*(?:的)?(?:工资|工钱|货款|欠款|借款|钱|款|费|彩礼|押金|定金|租金|补偿)")
_PEOPLE_RE = re.compile(
    r"\s*(?:多|余|来)?(?:名|位|(?:个|户|家|口)?(?:人|工人|农民工|村民|居民|业主|住户|户|家|商户|职工|员工|学生|老人|群众|"
    r"师傅|家庭|渔民|摊主|租户|会员|车主|家长|供应商|加工户))"
)


_COUNT_AFTER_DIGITS_RE = re.compile(r"\s*(?:多|余|来|个|名|位|户|口|家|人)")


def parse_chinese_number(text: str) -> float | None:
    """Parse an Arabic or Chinese numeral ("3000", "1.2", "两万八", "一百零五", "几十"); None if it is not one."""
    text = text.strip()
    if not text:
        return None
    if text in _VAGUE:
        return float(_VAGUE[text])
    try:
        return float(text)
    except ValueError:
        pass
    total = 0.0
    section = 0.0
    digit: float | None = None
    last_unit = 1
    for ch in text:
        if ch in _DIGITS:
            digit = float(_DIGITS[ch])
        elif ch in _SMALL_UNITS:
            unit = _SMALL_UNITS[ch]
            section += (1.0 if digit is None else digit) * unit  # "十五": a bare 十 means 10
            digit = None
            last_unit = unit
        elif ch in _BIG_UNITS:
            unit = _BIG_UNITS[ch]
            section += digit or 0.0
            total += (section or 1.0) * unit
            section, digit = 0.0, None
            last_unit = unit
        else:
            return None
    if digit is not None:
        # "两万八" / "三千五": a trailing digit counts in the next unit down.
        section += digit * (last_unit // 10 if last_unit >= 10 and not text.endswith("零" + text[-1]) else 1)
    return total + section


@dataclass(frozen=True, slots=True)
class Quantity:
    value: float
    start: int
    end: int
    text: str


def _value(m: re.Match[str]) -> float | None:
    num = m.group("num")
    value = parse_chinese_number(num)
    if value is None:
        return None
    unit = m.group("unit")
    if unit:
        value *= _BIG_UNITS.get(unit) or _SMALL_UNITS.get(unit) or _ASCII_UNITS.get(unit, 1)
        tail = m.group("tail")
        if tail:
            # "1万2" / "两万八": the trailing digit is in the next unit down.
            step = (_BIG_UNITS.get(unit) or _SMALL_UNITS.get(unit) or _ASCII_UNITS.get(unit, 10)) // 10
            value += (int(tail) if tail.isdigit() else _DIGITS[tail]) * step
    return value


def _candidates(text: str, minimum: float = 0.0) -> list[tuple[re.Match[str], float]]:
    out: list[tuple[re.Match[str], float]] = []
    for m in NUMBER_RE.finditer(text):
        num = m.group("num")
        if minimum >= 10 and len(num) == 1 and not m.group("unit"):
            continue  # "一直", "两个": a lone digit cannot reach the threshold; skip parsing it
        if num.isdigit() and len(num) >= 7 and not m.group("unit"):
            continue  # a phone or ID number, not a quantity
        # 千万/万一/百: a unit with no digit before it is a word ("千万别", "万一"), not a number
        if num[0] in "百佰千仟万萬亿" or (num in ("十", "拾", "几") and not m.group("approx")):
            continue
        value = _value(m)
        if value is not None and value >= minimum:
            out.append((m, value))
    return out


_VAGUE_RE = re.compile("|".join(sorted(_VAGUE, key=len, reverse=True)))


def money_amounts(text: str, minimum: float = 0.0) -> list[Quantity]:
    """Sums of money in yuan: a number with a currency word after it, or a bare number right after a
    money word ("被扣了三千", "欠货款50万"); numbers of people, dates and sizes are left out."""
    found: list[Quantity] = []
    for m, value in _candidates(text, minimum):
        rest = text[m.end() : m.end() + 6]
        if _CURRENCY_RE.match(rest):
            found.append(Quantity(value, m.start(), m.end(), m.group(0)))
            continue
        if _NOT_MONEY_RE.match(rest) or (m.group("num").isdigit() and not m.group("unit") and value < 100):
            continue
        # "二十多万", "十五万": callers rarely count anything but money in 万 without a measure word
        in_wan = any(ch in m.group(0) for ch in "万萬亿w")
        before = text[max(0, m.start() - 8) : m.start()]
        if in_wan or _MONEY_CUE_RE.search(before) or _MONEY_AFTER_RE.match(rest):
            found.append(Quantity(value, m.start(), m.end(), m.group(0)))
    for v in _VAGUE_RE.finditer(text):
        if v.group(0).endswith("万") and _VAGUE[v.group(0)] >= minimum and not _NOT_MONEY_RE.match(text, v.end()):
            found.append(Quantity(float(_VAGUE[v.group(0)]), v.start(), v.end(), v.group(0)))
    return found


def people_counts(text: str, minimum: float = 0.0) -> list[Quantity]:
    """Counts of people or households: "几十户", "一百多名工人", "三十多个村民", "上百人"."""
    found: list[Quantity] = []
    for m, value in _candidates(text, minimum):
        # "402业主" is a flat number; a count of digits needs a measure word ("20名", "30多户", "100人")
        if m.group("num").isdigit() and not _COUNT_AFTER_DIGITS_RE.match(text, m.end()):
            continue
        if _PEOPLE_RE.match(text, m.end()):
            found.append(Quantity(value, m.start(), m.end(), m.group(0)))
    for v in _VAGUE_RE.finditer(text):
        if _VAGUE[v.group(0)] >= minimum and _PEOPLE_RE.match(text, v.end()):
            found.append(Quantity(float(_VAGUE[v.group(0)]), v.start(), v.end(), v.group(0)))
    return found
