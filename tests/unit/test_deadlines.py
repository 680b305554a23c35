"""Deadline arithmetic against the 2026 State Council schedule (packaged holidays.yaml + chinese_calendar)."""

from __future__ import annotations

import logging
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from shared.domain import deadlines as dl
from shared.domain import workdays as wd
from shared.domain.deadlines import Deadline, due_date
from shared.domain.workdays import Calendar, YearSchedule

FAR = 2099  # a year no schedule will know while this code lives


def d(s: str) -> date:
    return date.fromisoformat(s)


# --- the issue's examples and every rule -------------------------------------------------------------


def test_issue_example_legal_aid_over_national_day() -> None:
    # Sep 29, 30 | Oct 1-7 off | Oct 8, 9, Sat 10 (调休 worked), 12, 13
    assert due_date("legal_aid.decision", d("2026-09-28")) == d("2026-10-13")


def test_issue_example_visitor_accept_ends_in_holiday() -> None:
    # 15 days -> Oct 5, inside the National Day holiday -> first working day after it
    assert due_date("visitor.accept", d("2026-09-20")) == d("2026-10-08")


@pytest.mark.parametrize(
    ("rule", "start", "due"),
    [
        ("visitor.accept", "2026-03-06", "2026-03-23"),  # Sat 21 -> Mon 23
        ("visitor.resolve", "2026-08-03", "2026-10-08"),  # Oct 2 -> after National Day
        ("visitor.resolve", "2026-08-01", "2026-09-30"),  # an ordinary Wednesday stays
        ("visitor.review", "2026-01-20", "2026-02-24"),  # Feb 19 -> after Spring Festival
        ("legal_aid.decision", "2026-02-12", "2026-02-28"),  # both 调休 Saturdays are counted
        ("mediation.resolve", "2026-03-15", "2026-04-15"),
        ("hotline.consult", "2026-02-12", "2026-02-14"),  # Fri 13, Sat 14 (worked)
        ("hotline.help", "2026-09-28", "2026-10-16"),
        ("hotline.complaint", "2026-04-30", "2026-05-25"),  # Labour Day off, Sat May 9 worked
    ],
)
def test_every_rule(rule: str, start: str, due: str) -> None:
    assert due_date(rule, d(start)) == d(due)


def test_deadline_carries_rule_and_source() -> None:
    dead = dl.deadline("legal_aid.decision", d("2026-09-28"))
    source = "办理法律援助案件程序规定 art. 13"
    assert dead == Deadline("legal_aid.decision", d("2026-09-28"), d("2026-10-13"), source)


def test_rule_registry_is_data() -> None:
    assert set(dl.rule_names()) == {
        "visitor.accept", "visitor.resolve", "visitor.extension", "visitor.review", "legal_aid.decision",
        "mediation.resolve", "hotline.consult", "hotline.help", "hotline.complaint",
    }
    rule = dl.get_rule("hotline.help")
    assert (rule.length, rule.unit) == (10, dl.PeriodUnit.WORKING_DAYS)
    assert dl.get_rule("mediation.resolve").unit is dl.PeriodUnit.MONTHS


def test_unknown_rule_lists_valid_names() -> None:
    with pytest.raises(ValueError, match=r"unknown deadline rule 'visitor\.acept'.*visitor\.accept"):
        due_date("visitor.acept", d("2026-01-05"))


# --- holidays, 调休, year boundaries -----------------------------------------------------------------


def test_swapped_weekend_days_are_working_days() -> None:
    cal = wd.default_calendar()
    for day in ("2026-01-04", "2026-02-14", "2026-02-28", "2026-05-09", "2026-09-20", "2026-10-10"):
        assert cal.is_workday(d(day)), day
    assert not cal.is_workday(d("2026-10-11"))  # the Sunday after stays a rest day
    assert not cal.is_workday(d("2026-10-07"))  # a weekday inside the holiday
    assert cal.is_workday(d("2026-10-09"))


def test_new_year_across_the_year_boundary() -> None:
    # Dec 17 + 15 = Jan 1 (off), Jan 2-3 off, Sunday Jan 4 is worked
    assert due_date("visitor.accept", d("2025-12-17")) == d("2026-01-04")
    # working days: Wed Dec 31 is one, Jan 1-3 are not, Sunday Jan 4 is the second
    assert due_date("hotline.consult", d("2025-12-30")) == d("2026-01-04")


def test_spring_festival_working_days() -> None:
    # 10 working days from Feb 12: 13, Sat 14, (15-23 off), 24, 25, 26, 27, Sat 28, Mar 2, 3, 4
    assert due_date("hotline.help", d("2026-02-12")) == d("2026-03-04")


def test_calendar_day_period_is_not_moved_off_a_worked_saturday() -> None:
    # Sep 25 + 15 = Oct 10, a Saturday that is worked: the period ends there
    assert due_date("visitor.accept", d("2026-09-25")) == d("2026-10-10")


def test_first_day_is_not_counted_even_when_it_is_a_holiday() -> None:
    assert due_date("legal_aid.decision", d("2026-10-03")) == d("2026-10-15")  # 8, 9, Sat 10, 12-15
    assert due_date("visitor.accept", d("2026-10-01")) == d("2026-10-16")


def test_next_workday_and_add_working_days() -> None:
    cal = wd.default_calendar()
    assert cal.next_workday(d("2026-09-30")) == d("2026-10-08")
    assert cal.next_workday(d("2026-09-30"), include_self=True) == d("2026-09-30")
    assert cal.add_working_days(d("2026-10-13"), -3) == d("2026-10-09")
    assert cal.add_working_days(d("2026-10-13"), 0) == d("2026-10-13")


# --- months (mediation.resolve) ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("start", "end"),
    [
        ("2026-01-31", "2026-02-28"),
        ("2024-01-31", "2024-02-29"),
        ("2026-03-31", "2026-04-30"),
        ("2026-12-31", "2027-01-31"),
        ("2026-05-15", "2026-06-15"),
    ],
)
def test_add_months_corresponding_day_or_month_end(start: str, end: str) -> None:
    assert dl.add_months(d(start), 1) == d(end)


def test_mediation_month_end() -> None:
    assert due_date("mediation.resolve", d("2026-01-31")) == d("2026-02-28")  # Saturday, but worked
    assert due_date("mediation.resolve", d("2024-01-31")) == d("2024-02-29")  # leap year
    assert due_date("mediation.resolve", d("2025-01-31")) == d("2025-02-28")
    assert due_date("mediation.resolve", d("2026-04-30")) == d("2026-06-01")  # Sat May 30 -> Mon
    assert due_date("mediation.resolve", d("2025-12-31")) == d("2026-02-02")  # Sat Jan 31 -> Mon


# --- extension, reminders, overdue -------------------------------------------------------------------


def test_extend_visitor_resolve() -> None:
    original = dl.deadline("visitor.resolve", d("2026-08-03"))  # due Oct 8
    ext = dl.extend(original)
    assert ext.rule == "visitor.extension"
    assert ext.start == original.due
    assert ext.due == d("2026-11-09")  # Oct 8 + 30 = Sat Nov 7 -> Mon Nov 9
    assert dl.extend(original, days=10).due == d("2026-10-19")  # Sun Oct 18 -> Mon


@pytest.mark.parametrize("days", [0, 31, -1])
def test_extend_is_bounded(days: int) -> None:
    with pytest.raises(ValueError, match="1 to 30"):
        dl.extend(dl.deadline("visitor.resolve", d("2026-08-03")), days=days)


def test_only_extendable_rules_extend_and_only_once() -> None:
    with pytest.raises(ValueError, match="cannot be extended"):
        dl.extend(dl.deadline("legal_aid.decision", d("2026-09-28")))
    once = dl.extend(dl.deadline("visitor.resolve", d("2026-08-03")))
    with pytest.raises(ValueError, match="cannot be extended"):
        dl.extend(once)
    with pytest.raises(ValueError, match="extension"):
        dl.deadline("visitor.extension", d("2026-08-03"))


def test_remind_on_counts_working_days_back() -> None:
    dead = dl.deadline("legal_aid.decision", d("2026-09-28"))  # due Tue Oct 13
    assert dl.remind_on(dead) == d("2026-10-12")
    assert dl.remind_on(dead, working_days_before=2) == d("2026-10-10")  # the worked Saturday
    assert dl.remind_on(dead, working_days_before=0) == dead.due


def test_remind_on_never_before_the_first_working_day_after_start() -> None:
    dead = dl.deadline("hotline.consult", d("2026-09-28"))  # due Sep 30
    assert dl.remind_on(dead, working_days_before=2) == d("2026-09-29")
    assert dl.remind_on(dead, working_days_before=5) == d("2026-09-29")
    with pytest.raises(ValueError):
        dl.remind_on(dead, working_days_before=-1)


def test_overdue_from_the_day_after_due() -> None:
    dead = dl.deadline("visitor.accept", d("2026-09-20"))
    assert not dl.is_overdue(dead, d("2026-10-08"))
    assert dl.is_overdue(dead, d("2026-10-09"))


def test_local_date_is_china_time() -> None:
    assert wd.local_date(datetime(2026, 9, 30, 16, 30, tzinfo=UTC)) == d("2026-10-01")
    assert wd.local_date(datetime(2026, 9, 30, 15, 59)) == d("2026-09-30")  # naive = UTC
    assert wd.local_date(datetime(2026, 10, 1, 0, 30, tzinfo=wd.CHINA_TZ)) == d("2026-10-01")


# --- unknown years -----------------------------------------------------------------------------------


def test_unknown_year_falls_back_to_weekends_and_reports(caplog: pytest.LogCaptureFixture) -> None:
    seen: list[int] = []
    cal = wd.load_calendar(on_unknown_year=seen.append)
    caplog.set_level(logging.WARNING, logger=wd.__name__)
    # Mon Mar 2 + 10 weekday-only working days = Mon Mar 16
    assert due_date("hotline.help", d(f"{FAR}-03-02"), cal) == d(f"{FAR}-03-16")
    # Mar 2 + 15 = Tue Mar 17; Jan 1 is treated as an ordinary day
    assert due_date("visitor.accept", d(f"{FAR}-03-02"), cal) == d(f"{FAR}-03-17")
    assert cal.is_workday(d(f"{FAR}-01-01"))
    assert not cal.is_workday(d(f"{FAR}-01-03"))  # Saturday
    assert not cal.knows_year(FAR)
    assert seen == [FAR] * 4  # once per call, not once per day looked at
    warnings = [r for r in caplog.records if str(FAR) in r.getMessage()]
    assert len(warnings) == 1  # logged once per year


def test_period_running_into_an_unknown_year() -> None:
    seen: list[int] = []
    cal = Calendar(wd.packaged_schedule(), on_unknown_year=seen.append, use_package=False)
    # from the known 2026 into 2027 (not in the schedule given): Dec 15 + 60 = Sat Feb 13 -> Mon Feb 15
    assert due_date("visitor.resolve", d("2026-12-15"), cal) == d("2027-02-15")
    assert seen == [2027]
    # wholly inside the known year: nothing reported
    due_date("visitor.accept", d("2026-09-20"), cal)
    assert seen == [2027]


def test_failing_hook_does_not_break_arithmetic() -> None:
    def boom(year: int) -> None:
        raise RuntimeError("metrics down")

    cal = Calendar(on_unknown_year=boom, use_package=False)
    assert due_date("hotline.consult", d(f"{FAR}-01-02"), cal) == d(f"{FAR}-01-06")  # Fri -> Mon, Tue


def test_years_before_the_package_data_do_not_raise() -> None:
    seen: list[int] = []
    cal = wd.load_calendar(on_unknown_year=seen.append)
    assert due_date("legal_aid.decision", d("1999-06-01"), cal) == d("1999-06-10")
    assert seen == [1999]


# --- operator data ------------------------------------------------------------------------------------


def test_packaged_2026_agrees_with_chinese_calendar() -> None:
    constants = pytest.importorskip("chinese_calendar.constants")
    if not any(h.year == 2026 for h in constants.holidays):
        pytest.skip("installed chinese_calendar has no 2026 data")
    ours = wd.packaged_schedule()[2026]
    assert ours.holidays == {h for h in constants.holidays if h.year == 2026}
    assert ours.workdays == {w for w in constants.workdays if w.year == 2026}


def test_examples_hold_on_the_yaml_alone() -> None:
    cal = Calendar(wd.packaged_schedule(), use_package=False)
    assert due_date("legal_aid.decision", d("2026-09-28"), cal) == d("2026-10-13")
    assert due_date("visitor.accept", d("2026-09-20"), cal) == d("2026-10-08")


def test_operator_override_file(tmp_path: Path) -> None:
    path = tmp_path / "holidays.yaml"
    path.write_text(
        f"""
{FAR}:
  holidays: [{FAR}-01-01, "{FAR}-01-26..{FAR}-01-30"]
  workdays: [{FAR}-01-24]
2026:
  holidays: [2026-10-08]   # a correction: one more day off
  workdays: [2026-10-05]   # and a package holiday turned into a working day
""",
        encoding="utf-8",
    )
    seen: list[int] = []
    cal = wd.load_calendar(path, on_unknown_year=seen.append)
    assert cal.knows_year(FAR)
    assert not cal.is_workday(d(f"{FAR}-01-01"))
    assert cal.is_workday(d(f"{FAR}-01-24"))  # a Saturday, worked
    assert not cal.is_workday(d(f"{FAR}-01-28"))  # inside the range
    assert not cal.is_workday(d(f"{FAR}-01-25"))  # an unlisted Sunday stays a rest day
    # Fri Jan 23 -> Sat 24 (worked), then 26-30 off, Mon Feb 2
    assert due_date("hotline.consult", d(f"{FAR}-01-23"), cal) == d(f"{FAR}-02-02")
    # the override wins over the packaged data and the package, day by day
    assert due_date("visitor.accept", d("2026-09-20"), cal) == d("2026-10-05")
    assert not cal.is_workday(d("2026-10-08"))
    assert seen == []
    # the default calendar is untouched
    assert wd.default_calendar().is_workday(d("2026-10-08"))


def test_merge_is_day_by_day() -> None:
    base = {2030: YearSchedule(frozenset({d("2030-01-01"), d("2030-01-02")}), frozenset({d("2030-01-05")}))}
    top = {2030: YearSchedule(frozenset({d("2030-01-05")}), frozenset({d("2030-01-02")}))}
    merged = wd.merge_schedules(base, top)[2030]
    assert merged.holidays == {d("2030-01-01"), d("2030-01-05")}
    assert merged.workdays == {d("2030-01-02")}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("2030:\n  holidays: [2031-01-01]\n", "not in 2030"),
        ("2030:\n  holidays: [2030-01-01]\n  workdays: [2030-01-01]\n", "both a holiday and a workday"),
        ("2030:\n  workdays: [2030-01-05]\n", "lists no holidays"),
        ("2030:\n  holidays: [2030-13-01]\n", "bad.yaml: .*month"),  # YAML's own date parsing
        ("2030:\n  holidays: ['2030-02-30']\n", "is not YYYY-MM-DD"),
        ("2030: [unclosed\n", "bad.yaml: .*not valid YAML"),
        ("2030:\n  holidays: ['2030-01-05..2030-01-01']\n", "ends before it starts"),
        ("2030:\n  holiday: [2030-01-01]\n", "unexpected keys"),
        ("abc:\n  holidays: [2030-01-01]\n", "is not a year"),
        ("- 2030-01-01\n", "expected a mapping"),
    ],
)
def test_malformed_operator_file_is_rejected(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ValueError, match=message):
        wd.load_calendar(path)


def test_empty_override_changes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "empty.yaml"
    path.write_text("# nothing yet\n", encoding="utf-8")
    cal = wd.load_calendar(path)
    assert due_date("visitor.accept", d("2026-09-20"), cal) == d("2026-10-08")


def test_calendar_without_any_data_is_weekends_only() -> None:
    cal = Calendar(use_package=False)
    assert cal.is_workday(d("2026-10-01"))
    assert cal.add_working_days(d("2026-10-02"), 1) == d("2026-10-05")
    assert cal.next_workday(d("2026-10-02")) == d("2026-10-02") + timedelta(days=3)
