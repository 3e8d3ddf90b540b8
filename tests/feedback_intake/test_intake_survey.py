"""Tests of the annual household survey: definition, streamed NDJSON and CSV uploads, idempotent re-upload."""

from __future__ import annotations

import json
from typing import Any

import pytest

STRATA = [{"id": "urban", "population": 900000}, {"id": "rural", "population": 300000}]


async def define(system: Any, headers: dict[str, str], year: int = 2026) -> Any:
    return await system.intake.post("/v1/surveys", headers=headers,
                                    json={"year": year, "title": "Household survey", "strata": STRATA})


async def survey_events(system: Any, event_type: str) -> list[dict[str, Any]]:
    return await system.emitted("feedback-intake", event_type)


async def test_one_survey_per_year(system: Any, token: Any) -> None:
    commission = {"Authorization": f"Bearer {token('commission')}"}
    first = await define(system, commission)
    assert first.status_code == 201
    assert (await define(system, commission)).status_code == 409
    assert (await define(system, {"Authorization": f"Bearer {token('citizen')}"}, 2027)).status_code == 403
    defined = await survey_events(system, "survey.defined")
    assert [d["survey_id"] for d in defined] == [first.json()["id"]]


async def test_ndjson_rows_are_judged_one_by_one_and_reuploads_are_duplicates(system: Any, token: Any) -> None:
    commission = {"Authorization": f"Bearer {token('commission')}"}
    survey_id = (await define(system, commission)).json()["id"]
    lines = [
        {"respondent_id": "h1", "stratum": "urban", "ratings": {"tax": 5, "education": "unknown"}},
        {"respondent_id": "h2", "stratum": "moon", "ratings": {"tax": 4}},
        {"respondent_id": "h3", "stratum": "rural", "ratings": {"no-such-unit": 4}},
        {"respondent_id": "h4", "stratum": "rural", "ratings": {"tax": 9}},
        {"respondent_id": "h5", "stratum": "rural", "ratings": {"tax": 2, "finance": 3}},
    ]
    raw = "\n".join(json.dumps(line) for line in lines) + "\nnot json\n"
    headers = {**commission, "Content-Type": "application/x-ndjson"}
    response = await system.intake.post(f"/v1/surveys/{survey_id}/responses", content=raw, headers=headers)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["accepted"] == 2 and body["duplicates"] == 0
    assert [r["row"] for r in body["rejected"]] == [2, 3, 4, 6]
    again = (await system.intake.post(f"/v1/surveys/{survey_id}/responses", content=raw, headers=headers)).json()
    assert again["accepted"] == 0 and again["duplicates"] == 2
    summary = (await system.intake.get(f"/v1/surveys/{survey_id}", headers=commission)).json()
    assert summary["respondents"] == 2
    assert {s["id"]: s["respondents"] for s in summary["strata"]} == {"urban": 1, "rural": 1}
    responses = await survey_events(system, "survey.response")
    assert sorted(r["respondent_id"] for r in responses) == ["h1", "h5"]
    h1 = next(r for r in responses if r["respondent_id"] == "h1")
    assert h1["stratum"] == "urban" and h1["ratings"] == {"tax": 5, "education": None}


async def test_csv_upload_streams_in_chunks(system: Any, token: Any) -> None:
    system.apps["feedback-intake"].state.settings.survey_chunk_rows = 7
    commission = {"Authorization": f"Bearer {token('commission')}"}
    survey_id = (await define(system, commission)).json()["id"]
    rows = ["respondent_id,stratum,tax,finance"] + [f"r{i},{'urban' if i % 2 else 'rural'},{i % 5 + 1},"
                                                    for i in range(50)] + ["r50,urban,7,1", "r0,urban,1,1"]

    async def chunks() -> Any:
        data = ("\r\n".join(rows) + "\r\n").encode()
        for start in range(0, len(data), 33):  # boundaries fall inside lines
            yield data[start:start + 33]

    response = await system.intake.post(f"/v1/surveys/{survey_id}/responses", content=chunks(),
                                        headers={**commission, "Content-Type": "text/csv"})
    body = response.json()
    assert body["accepted"] == 50 and body["duplicates"] == 1
    message = "unit tax: level must be 1..5 or \"unknown\", got '7'"
    assert body["rejected"] == [{"row": 52, "error": {"code": "invalid", "message": message}}]
    responses = await survey_events(system, "survey.response")
    r3 = next(r for r in responses if r["respondent_id"] == "r3")
    assert r3["ratings"] == {"tax": 4}


async def test_upload_needs_a_known_survey_and_media_type(system: Any, token: Any) -> None:
    commission = {"Authorization": f"Bearer {token('commission')}"}
    missing = await system.intake.post("/v1/surveys/nope/responses", content="{}",
                                       headers={**commission, "Content-Type": "application/x-ndjson"})
    assert missing.status_code == 404
    survey_id = (await define(system, commission)).json()["id"]
    wrong = await system.intake.post(f"/v1/surveys/{survey_id}/responses", content="{}",
                                     headers={**commission, "Content-Type": "application/json"})
    assert wrong.status_code == 415


def ndjson(respondent_id: str, level: str) -> str:
    """A line written by hand: the level is JSON text as given (a 5,000-digit number, a quoted "³")."""
    return '{"respondent_id": "' + respondent_id + '", "stratum": "urban", "ratings": {"tax": ' + level + "}}"


@pytest.mark.parametrize(("csv_format", "bad_row", "message"), [
    (False, ndjson("b", '"³"'), "got '³'"),  # str.isdigit() is true, int() refuses it
    (False, "[" * 100_000, "nested too deeply"),  # RecursionError in json.loads
    (False, ndjson("b", "4" * 5000), "a number over 4,300 digits long"),
    (False, ndjson("b\\ud800", "4"), "surrogate"),  # valid JSON, no UTF-8 form
    (False, ndjson("b\\u0000", "4"), "NUL"),  # PostgreSQL text cannot hold it
    (True, "b,urban,²", "got '²'"),
    (True, "x" * 140_000 + ",urban,5", "field larger than field limit"),  # csv's 131,072 characters
    (True, "b\x00,urban,4", "NUL"),
], ids=["superscript", "deep", "huge-int", "surrogate", "nul", "csv-superscript", "csv-long-field", "csv-nul"])
async def test_a_row_the_parsers_refuse_is_rejected_alone_and_the_others_stored(
        system: Any, token: Any, csv_format: bool, bad_row: str, message: str) -> None:
    """Each of these was a plain 500 that lost the rows read before it (up to a chunk, uncommitted)."""
    commission = {"Authorization": f"Bearer {token('commission')}"}
    survey_id = (await define(system, commission)).json()["id"]
    if csv_format:
        lines = ["respondent_id,stratum,tax", "a,urban,5", bad_row, "c,rural,05"]
    else:
        lines = [ndjson("a", "5"), bad_row, '{"respondent_id": "c", "stratum": "rural", "ratings": {"tax": "05"}}']
    response = await system.intake.post(
        f"/v1/surveys/{survey_id}/responses", content=("\n".join(lines) + "\n").encode(),
        headers={**commission, "Content-Type": "text/csv" if csv_format else "application/x-ndjson"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["accepted"] == 2 and body["duplicates"] == 0
    [rejected] = body["rejected"]
    assert rejected["row"] == lines.index(bad_row) + 1 and message in rejected["error"]["message"]
    assert (await system.intake.get(f"/v1/surveys/{survey_id}", headers=commission)).json()["respondents"] == 2
    responses = await survey_events(system, "survey.response")
    assert sorted((r["respondent_id"], r["ratings"]["tax"]) for r in responses) == [("a", 5), ("c", 5)]


async def test_a_csv_exported_with_a_byte_order_mark_is_read(system: Any, token: Any) -> None:
    commission = {"Authorization": f"Bearer {token('commission')}"}
    survey_id = (await define(system, commission)).json()["id"]
    data = "\ufeffrespondent_id,stratum,tax\r\nb1,urban,4\r\n".encode()

    async def chunks() -> Any:
        yield data[:2]  # the mark split across network chunks
        yield data[2:]

    response = await system.intake.post(f"/v1/surveys/{survey_id}/responses", content=chunks(),
                                        headers={**commission, "Content-Type": "text/csv"})
    assert response.status_code == 200, response.text
    assert response.json() == {"accepted": 1, "duplicates": 0, "rejected": []}


async def test_a_survey_definition_with_nul_is_422_naming_the_field(system: Any, token: Any) -> None:
    commission = {"Authorization": f"Bearer {token('commission')}"}
    for body, where in [({"year": 2026, "title": "Survey\x00", "strata": STRATA}, "title"),
                        ({"year": 2026, "title": "Survey", "strata": [{"id": "ur\x00ban", "population": 1}]},
                         "strata.0.id")]:
        response = await system.intake.post("/v1/surveys", headers=commission, json=body)
        assert response.status_code == 422, response.text
        assert f"{where}: Value error, must not contain the NUL character" in response.json()["error"]["message"]
