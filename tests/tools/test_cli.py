"""The `triage` command's offline parts: classify's line contract and the deadline calculator."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from tools.classify import classify_jsonl
from tools.main import main


@pytest.fixture(autouse=True)
def _built_model(model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """classify loads the model from the settings' model_dir, `model` in the working directory."""
    monkeypatch.chdir(model_dir.parent)


def test_classify_answers_every_line_in_order_with_the_contracts_fields() -> None:
    lines = [
        {"id": "a", "text": "有人冒充快递客服让我开通备用金，被扣了三千", "channel": "110"},
        "not json",
        {"id": "c", "text": "前夫把孩子带走一个月不让我见，离婚协议写的是每周探视两次", "channel": "12345"},
        {"id": "d"},
    ]
    source = io.StringIO("\n".join(line if isinstance(line, str) else json.dumps(line, ensure_ascii=False)
                                   for line in lines) + "\n")
    sink = io.StringIO()
    assert classify_jsonl(source, sink) == 1  # some lines were not complaints
    out = [json.loads(line) for line in sink.getvalue().splitlines()]
    assert [o.get("id") for o in out] == ["a", None, "c", None]
    assert (out[0]["unit"], out[0]["category"], out[0]["urgency"]) == ("police", "fraud", "high")
    assert (out[2]["unit"], out[2]["category"]) == ("mediation", "family")
    for result in (out[0], out[2]):
        assert {"id", "unit", "category", "urgency", "risk_flags", "reasons"} <= result.keys()
        assert result["reasons"], "every decision carries its reasons"
    assert "error" in out[1] and "error" in out[3]


def test_classify_lists_the_matters_of_a_complaint_that_holds_several() -> None:
    text = ("邻居欠我两万块钱一直不还，想请调解中心帮忙。"
            "另外还有个事，我们小区3号楼电梯卡在七楼，里面困着两个老人")
    sink = io.StringIO()
    assert classify_jsonl(io.StringIO(json.dumps({"id": "m", "text": text}, ensure_ascii=False) + "\n"), sink) == 0
    out = json.loads(sink.getvalue())
    assert (out["unit"], out["urgency"], out["danger"]) == ("command", "critical", "danger.trapped_disaster")
    assert [m["unit"] for m in out["matters"]] == ["mediation", "command"]
    assert "".join(m["text"] for m in out["matters"]).replace(" ", "") == text


def test_deadline_command_prints_the_iso_due_date(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["deadline", "legal_aid.decision", "--from", "2026-09-28"]) == 0
    assert capsys.readouterr().out.strip() == "2026-10-13"
    assert main(["deadline", "visitor.accept", "--from", "2026-09-20"]) == 0
    assert capsys.readouterr().out.strip() == "2026-10-08"


def test_deadline_command_names_the_valid_rules_for_an_unknown_one(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["deadline", "no.such.rule", "--from", "2026-09-28"]) == 2
    assert "legal_aid.decision" in capsys.readouterr().err
