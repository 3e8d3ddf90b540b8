"""The CSV import's parsing and validation: every bad row reported with its line, nothing half-read."""

from __future__ import annotations

from target_tracker.service import parse_import

HEADER = "unit_id,code,title,unit_of_measure,direction,baseline,target,weight,kind,due,milestones\n"
UNITS = frozenset({"finance", "health-commission"})


def test_good_rows_become_targets() -> None:
    text = HEADER + ("finance,a,A,%,increase,10,20,1,,,\n"
                     "finance,m,M,done,increase,0,1,2,milestone,2025-06-30,\n"
                     "health-commission,a,A,%,increase,0,12,1,,,1;2;3;4;5;6;7;8;9;10;11;12\n")
    bodies, errors = parse_import(text, year=2025, unit_ids=UNITS, existing=set())
    assert errors == []
    assert [(b.unit_id, b.code, b.kind) for b in bodies] == [
        ("finance", "a", "numeric"), ("finance", "m", "milestone"), ("health-commission", "a", "numeric")]
    assert bodies[1].due is not None and bodies[1].due.isoformat() == "2025-06-30"
    assert bodies[2].milestones == [float(m) for m in range(1, 13)]


def test_every_bad_row_is_reported() -> None:
    text = HEADER + ("finance,a,A,%,increase,10,20,1,,,\n"          # line 2: fine
                     "finance,a,A again,%,increase,10,20,1,,,\n"    # line 3: repeats line 2
                     "finance,b,B,%,decrease,10,20,1,,,\n"          # line 4: direction disagrees
                     "finance,c,C,%,increase,10,10,1,,,\n"          # line 5: target = baseline
                     "atlantis,d,D,%,increase,1,2,1,,,\n"           # line 6: unknown unit
                     "finance,e,E,%,increase,x,2,1,,,\n"            # line 7: not a number
                     "finance,f,F,%,increase,1,2,0,,,\n"            # line 8: weight must be > 0
                     "finance,g,G,%,increase,1,2,1,milestone,2024-06-30,\n"  # line 9: not a milestone, wrong due
                     "finance,old,Old,%,increase,1,2,1,,,\n")       # line 10: defined before
    bodies, errors = parse_import(text, year=2025, unit_ids=UNITS, existing={("finance", "old")})
    assert [e["row"] for e in errors] == [3, 4, 5, 6, 7, 8, 9, 10]
    messages = [e["error"] for e in errors]
    assert "repeats row 2" in messages[0]
    assert "disagrees" in messages[1] and "equals baseline" in messages[2] and "city profile" in messages[3]
    assert "baseline" in messages[4] and "weight" in messages[5]
    assert "milestone goes from baseline 0" in messages[6] and "not in 2025" in messages[6]
    assert "already has" in messages[7]
    assert [b.code for b in bodies] == ["a"]


def test_missing_and_unknown_columns() -> None:
    _, errors = parse_import("unit_id,code\nfinance,a\n", year=2025, unit_ids=UNITS, existing=set())
    assert errors[0]["row"] == 1 and "missing column(s): title" in errors[0]["error"]
    _, errors = parse_import(HEADER.strip() + ",colour\n", year=2025, unit_ids=UNITS, existing=set())
    assert "unknown column(s): colour" in errors[0]["error"]
    _, errors = parse_import(HEADER, year=2025, unit_ids=UNITS, existing=set())
    assert errors == [{"row": 1, "error": "the file has no targets"}]
