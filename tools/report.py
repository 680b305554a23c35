"""`triage report --month 2026-11 [--unit U] --format html|md|csv`: the monthly report (月度报告) from the
figures on the store, as the supervisors' page shows it (/supervisor/report), printed or written to a file."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from services.desk_api import report as monthly
from services.desk_api.supervision import Supervision
from services.desk_api.web import templates
from shared.adapters.mongo import MongoStorage
from shared.config import Settings
from shared.domain.figures import Period
from shared.domain.triage import Unit

STYLE = Path(monthly.__file__).parent / "static" / "desk.css"


async def render_report(settings: Settings, month: str, unit: Unit | None, kind: str) -> str:
    Period.month(month)  # ValueError for a month that is not one
    storage = MongoStorage.from_settings(settings, "report")
    try:
        supervision = Supervision(storage.figures, settings.supervisor_floors, lambda: datetime.now(UTC))
        found = await monthly.monthly_report(supervision, month, unit)
    finally:
        await storage.close()
    if kind == "md":
        return monthly.as_markdown(found)
    if kind == "csv":
        return monthly.as_csv(found)
    return templates.env.get_template("supervisor_report.html").render(
        report=found, summary=monthly.summary(found), tables=list(monthly.tables(found)), query=None, supervisor=True,
        inline_css=STYLE.read_text(encoding="utf-8"))  # a file on its own: its style inside it
