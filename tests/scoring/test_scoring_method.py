"""Whole scorecards of scoring-method.md computed by hand, and properties of the method."""

from __future__ import annotations

import itertools
import math
import random
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scoring.method import (
    ChannelSums,
    Config,
    ProjectInput,
    StratumSums,
    TargetInput,
    UnitInputs,
    config_problems,
    excellent_places,
    grade,
    ranking,
    scorecard,
    survey_sums,
    year_scorecards,
)

CONFIG = Config()


def plain(n: int, mean: float) -> ChannelSums:
    """n window or online ratings, all of the same satisfaction value (variance 0)."""
    return ChannelSums(n=float(n), sum_s=n * mean, sum_s2=n * mean * mean, count=n)


def numeric(code: str, baseline: float, target: float, value: float | None, weight: float = 1.0,
            direction: str | None = None) -> TargetInput:
    direction = direction or ("increase" if target > baseline else "decrease")
    return TargetInput(target_id=f"t-{code}", code=code, kind="numeric", direction=direction, baseline=baseline,
                       target=target, weight=weight, value=value)


def milestone(code: str, done: bool | None) -> TargetInput:
    return TargetInput(target_id=f"t-{code}", code=code, kind="milestone", direction="increase", baseline=0,
                       target=1, weight=1.0, value=None if done is None else float(done))


CITY = {"window": plain(100, 0.8), "online": plain(50, 0.6)}


def test_card_1_small_n_is_pulled_to_the_city_with_every_component() -> None:
    # Window: 4 ratings of mean 0.5 -> shrunk (4*0.5 + 20*0.8)/24 = 0.75; S = 0.75; public 37.5.
    # Targets: increase 10 -> 20 at 15, r 0.5 weight 2; decrease 100 -> 50 at 40, r 1.2 clamped to 1;
    #   a done milestone, r 1 -> 45 * (2*0.5 + 1 + 1) / 4 = 33.75.
    # Leaders 80 and 90 -> 5 * 85 / 100 = 4.25. One project assessed 1.0, 1.2, 1.4 -> 1.2 (under the cap).
    # Adjustment -1. Total 37.5 + 33.75 + 4.25 + 1.2 - 1 = 75.7.
    inputs = UnitInputs(
        channels={"window": plain(4, 0.5)},
        targets=[numeric("a", 10, 20, 15, weight=2), numeric("b", 100, 50, 40), milestone("c", True)],
        grades=[80, 90], projects=[ProjectInput("p1", [1.0, 1.2, 1.4])], adjustments=[(-1.0, "late report")])
    card = scorecard("u", "departments", 2026, inputs, CITY, CONFIG)
    assert card["public"]["channels"]["window"]["shrunk"] == pytest.approx(0.75)
    assert card["components"] == pytest.approx({"public": 37.5, "targets": 33.75, "leaders": 4.25, "bonus": 1.2,
                                                "adjustments": -1.0})
    assert card["total"] == pytest.approx(75.7)
    assert [t["r"] for t in card["targets"]] == pytest.approx([0.5, 1.0, 1.0])
    assert card["leaders"] == {"n": 2, "mean": 85.0}
    assert card["bonus"]["projects"] == [{"project_id": "p1", "assessments": 3, "bonus": pytest.approx(1.2)}]
    assert card["adjustments"] == [{"points": -1.0, "reason": "late report"}]
    assert card["warnings"] == []


def test_card_2_large_n_barely_moves() -> None:
    # 1980 ratings of mean 0.5, city 0.8: (1980*0.5 + 20*0.8) / 2000 = 0.503 -> 25.15 points.
    card = scorecard("u", "g", 2026, UnitInputs(channels={"window": plain(1980, 0.5)}), CITY, CONFIG)
    assert card["public"]["S"] == pytest.approx(0.503)
    assert card["components"]["public"] == pytest.approx(25.15)


def test_card_3_a_missing_channel_leaves_the_blend() -> None:
    # Online 30 at 0.9 -> (27 + 12) / 50 = 0.78; window 20 at 0.6 -> (12 + 16) / 40 = 0.7; no survey.
    # S = (0.25*0.7 + 0.15*0.78) / 0.4 = (0.175 + 0.117) / 0.4 = 0.73 -> 36.5.
    card = scorecard("u", "g", 2026, UnitInputs(channels={"window": plain(20, 0.6), "online": plain(30, 0.9)}),
                     CITY, CONFIG)
    assert card["public"]["channels"]["survey"]["n"] == 0
    assert card["public"]["S"] == pytest.approx(0.73)
    assert card["components"]["public"] == pytest.approx(36.5)


def test_card_4_nothing_at_all_is_zero_with_warnings() -> None:
    card = scorecard("u", "g", 2026, UnitInputs(adjustments=[(2.0, "flood relief")]), CITY, CONFIG)
    assert card["components"] == {"public": 0.0, "targets": 0.0, "leaders": 0.0, "bonus": 0.0, "adjustments": 2.0}
    assert card["total"] == 2.0
    assert card["public"]["interval"] is None
    text = " ".join(card["warnings"])
    assert "no rating" in text and "no targets" in text and "no leader grade" in text


def test_card_5_clamping_no_report_and_an_undone_milestone() -> None:
    # increase 10 -> 20 at 5: r -0.5 clamped to 0; decrease 100 -> 50 at 120: -0.4 -> 0;
    # a report-less target: 0 and a warning; milestone not done: 0; one at 12: r 0.2 (weight 5).
    # 45 * (5*0.2) / 9 = 5.0
    targets = [numeric("a", 10, 20, 5), numeric("b", 100, 50, 120), numeric("c", 1, 2, None), milestone("d", False),
               numeric("e", 10, 20, 12, weight=5)]
    card = scorecard("u", "g", 2026, UnitInputs(targets=targets), CITY, CONFIG)
    assert [t["r"] for t in card["targets"]] == pytest.approx([0.0, 0.0, 0.0, 0.0, 0.2])
    assert card["components"]["targets"] == pytest.approx(5.0)
    assert any("target c: no progress report" in w for w in card["warnings"])


def test_card_6_bonus_over_the_cap_and_too_few_assessors() -> None:
    # 1.5 + 1.5 + 1.2 = 4.2 -> capped at 3; a project with 2 of 3 assessments gives 0.
    projects = [ProjectInput("p1", [1.5, 1.5, 1.5]), ProjectInput("p2", [1.5, 1.4, 1.6, 1.5]),
                ProjectInput("p3", [1.0, 1.2, 1.4]), ProjectInput("p4", [1.5, 1.5])]
    card = scorecard("u", "g", 2026, UnitInputs(projects=projects), CITY, CONFIG)
    bonuses = {p["project_id"]: p["bonus"] for p in card["bonus"]["projects"]}
    assert bonuses == pytest.approx({"p1": 1.5, "p2": 1.5, "p3": 1.2, "p4": 0.0})
    assert card["components"]["bonus"] == 3.0
    assert any("p4: 2 of 3 assessments" in w for w in card["warnings"])
    wider_cap = scorecard("u", "g", 2026, UnitInputs(projects=projects), CITY, Config(bonus_cap=6, min_assessors=2))
    assert wider_cap["components"]["bonus"] == pytest.approx(1.5 + 1.5 + 1.2 + 1.5)


def test_card_7_the_survey_is_post_stratified() -> None:
    # Stratum A: N 1000, 2 respondents -> weight 500; B: N 3000, 1 respondent -> weight 3000.
    # The unit: A rated 1.0 and 0.5, B rated 0. sum w = 4000, sum w s = 750, mean 0.1875;
    # sum w^2 = 2*250000 + 9e6 = 9.5e6, effective n = 4000^2 / 9.5e6 = 1.68421.
    survey = survey_sums({"A": StratumSums(2, 1.5, 1.25), "B": StratumSums(1, 0.0, 0.0)},
                         {"A": (1000, 2), "B": (3000, 1)})
    assert survey.n == 4000 and survey.sum_s == 750 and survey.sum_w2 == 9.5e6 and survey.count == 3
    assert survey.mean == pytest.approx(0.1875)
    assert survey.effective_n == pytest.approx(1.684210526)
    # City survey mean 0.5: shrunk = (1.68421*0.1875 + 20*0.5) / 21.68421 = 0.475728...; only channel -> S.
    city = {"survey": ChannelSums(n=8000, sum_s=4000, sum_s2=3000, sum_w2=1e7, count=9)}
    card = scorecard("u", "g", 2026, UnitInputs(channels={"survey": survey}), city, CONFIG)
    n_eff = 16 / 9.5
    assert card["public"]["S"] == pytest.approx((n_eff * 0.1875 + 10) / (n_eff + 20))
    assert card["public"]["channels"]["survey"]["effective_n"] == pytest.approx(n_eff)


def _group(totals: dict[str, float]) -> dict[str, dict[str, Any]]:
    """A group whose totals come from adjustments alone (no other input), so they are exact."""
    inputs = {u: UnitInputs(adjustments=[(t, "fixture")]) for u, t in totals.items()}
    return year_scorecards(2026, dict.fromkeys(totals, "g"), inputs, CONFIG)


def test_card_8_grades_with_a_total_just_under_the_pass_line() -> None:
    # 10 units: the top 20% = 2 are excellent; 79.999 is under the pass line of 80.
    totals = {"u01": 95, "u02": 93, "u03": 91, "u04": 88, "u05": 86, "u06": 84, "u07": 83, "u08": 81,
              "u09": 80.0, "u10": 79.999}
    cards = _group(totals)
    assert [cards[u]["grade"] for u in sorted(totals)] == ["excellent", "excellent"] + ["good"] * 7 + [
        "unsatisfactory"]
    assert [cards[u]["rank"] for u in sorted(totals)] == list(range(1, 11))


def test_card_9_first_place_under_the_pass_line_is_unsatisfactory() -> None:
    cards = _group({"a": 79.5, "b": 70.0, "c": 60.0})
    assert [(cards[u]["rank"], cards[u]["grade"]) for u in "abc"] == [(1, "unsatisfactory"), (2, "unsatisfactory"),
                                                                     (3, "unsatisfactory")]


def test_card_10_ties_fall_to_public_then_targets_then_unit_id() -> None:
    def row(unit: str, total: float, public: float, targets: float) -> dict[str, Any]:
        return {"unit_id": unit, "total": total, "components": {"public": public, "targets": targets}}

    rows = [row("d", 90.0, 40.0, 40.0), row("c", 90.0 + 5e-10, 40.0, 40.0), row("b", 90.0, 41.0, 39.0),
            row("a", 90.0, 40.0, 41.0), row("e", 91.0, 10.0, 10.0)]
    # e leads on total; b wins the public tie-break; a beats c and d on targets; c and d are
    # equal within 1e-9 on everything, so the unit id decides.
    assert [r["unit_id"] for r in ranking(rows)] == ["e", "b", "a", "c", "d"]


def test_excellent_places() -> None:
    assert excellent_places(5, 0.2) == 1  # floor(1.0 + 1e-9)
    assert excellent_places(4, 0.2) == 1  # at least one
    assert excellent_places(13, 0.2) == 2
    assert excellent_places(40, 0.2) == 8
    assert grade(80.0, 9, 10, CONFIG) == "good"


def test_config_problems_are_all_listed() -> None:
    problems = config_problems({"w_public": 60, "channel_weights": {"survey": 0, "window": -1, "phone": 1},
                                "excellent_share": 2, "bogus": 1})
    assert "bogus: unknown setting" in problems
    problems = config_problems({"w_public": 60, "channel_weights": {"survey": 0, "window": -1, "phone": 1},
                                "excellent_share": 2})
    text = "\n".join(problems)
    assert "must equal 100" in text
    assert "channel_weights.survey: must be a positive number" in text
    assert "channel_weights.window: must be a positive number" in text
    assert "channel_weights.online: missing" in text
    assert "channel_weights.phone: unknown channel" in text
    assert "excellent_share" in text
    assert config_problems({}) == []
    assert config_problems({"w_public": 40, "w_targets": 50, "w_leaders": 10}) == []


# --- properties ---------------------------------------------------------------------------

levels = st.integers(min_value=0, max_value=200)
s_values = st.sampled_from([0.0, 0.25, 0.5, 0.75, 1.0])


@st.composite
def channel(draw: st.DrawFn) -> ChannelSums:
    values = draw(st.lists(s_values, max_size=30))
    return ChannelSums(n=float(len(values)), sum_s=sum(values), sum_s2=sum(v * v for v in values),
                       count=len(values))


@st.composite
def unit_inputs(draw: st.DrawFn) -> UnitInputs:
    channels = {c: draw(channel()) for c in ("window", "online") if draw(st.booleans())}
    targets = []
    for i in range(draw(st.integers(0, 4))):
        baseline = draw(st.floats(-100, 100))
        delta = draw(st.floats(0.5, 100)) * draw(st.sampled_from([-1, 1]))
        value = draw(st.none() | st.floats(-300, 300))
        targets.append(numeric(str(i), baseline, baseline + delta, value, weight=draw(st.floats(0.1, 10))))
    grades = draw(st.lists(st.floats(0, 100), max_size=5))
    projects = [ProjectInput(f"p{i}", draw(st.lists(st.floats(0, 1.5), max_size=5)))
                for i in range(draw(st.integers(0, 4)))]
    adjustments = [(draw(st.floats(-10, 10)), "r") for _ in range(draw(st.integers(0, 2)))]
    return UnitInputs(channels=channels, targets=targets, grades=grades, projects=projects, adjustments=adjustments)


@settings(max_examples=200, deadline=None)
@given(inputs=unit_inputs(), city=unit_inputs())
def test_total_is_the_sum_of_components_each_in_its_range(inputs: UnitInputs, city: UnitInputs) -> None:
    card = scorecard("u", "g", 2026, inputs, city.channels, CONFIG)
    c = card["components"]
    assert card["total"] == pytest.approx(sum(c.values()))
    assert 0 <= c["public"] <= CONFIG.w_public + 1e-9
    assert 0 <= c["targets"] <= CONFIG.w_targets + 1e-9
    assert 0 <= c["leaders"] <= CONFIG.w_leaders + 1e-9
    assert 0 <= c["bonus"] <= CONFIG.bonus_cap
    assert all(0 <= t["r"] <= 1 for t in card["targets"])
    if card["public"]["interval"] is not None:
        low, high = card["public"]["interval"]
        assert 0 <= low <= card["public"]["S"] <= high <= 1


close_numbers = st.sampled_from([80.0, 80.0 + 4e-10, 80.0 + 8e-10, 80.0 + 1.2e-9, 79.0, 90.0])


@settings(max_examples=300, deadline=None)
@given(rows=st.lists(st.tuples(close_numbers, close_numbers, close_numbers), min_size=1, max_size=12),
       seed=st.integers(0, 1000))
def test_the_ranking_is_a_strict_total_order(rows: list[tuple[float, float, float]], seed: int) -> None:
    table = [{"unit_id": f"u{i:02d}", "total": t, "components": {"public": p, "targets": g}}
             for i, (t, p, g) in enumerate(rows)]
    order = [r["unit_id"] for r in ranking(table)]
    shuffled = table[:]
    random.Random(seed).shuffle(shuffled)
    # The same order whatever order the rows come in, every unit exactly once.
    assert [r["unit_id"] for r in ranking(shuffled)] == order
    assert sorted(order) == sorted(r["unit_id"] for r in table)
    by_id = {r["unit_id"]: r for r in table}
    for before, after in itertools.pairwise(order):
        a, b = by_id[before], by_id[after]
        assert not b["total"] > a["total"] + 1e-9  # never a clearly larger total below a smaller one


def test_a_setting_of_the_wrong_type_hides_no_other_problem() -> None:
    problems = config_problems({"w_public": "x", "min_assessors": 1.5, "w_targets": -1, "excellent_share": 5,
                                "objection_days": 366, "channel_weights": {"survey": 0}})
    assert problems[:2] == ["w_public: must be a number", "min_assessors: must be an integer"]
    text = "\n".join(problems)
    for expected in ("w_targets: must not be negative", "excellent_share: must be between 0 and 1",
                     "objection_days: must be between 0 and 365", "channel_weights.survey: must be a positive number",
                     "channel_weights.window: missing"):
        assert expected in text


def test_objection_days_and_channel_weights_are_bounded() -> None:
    assert config_problems({"objection_days": 365}) == []
    assert config_problems({"objection_days": 10**12}) == ["objection_days: must be between 0 and 365"]
    assert config_problems({"channel_weights": {"survey": 1000, "window": 1000, "online": 1000}}) == []
    huge = config_problems({"channel_weights": {"survey": 1e308, "window": 1e308, "online": 1e308}})
    assert len(huge) == 3 and all("at most 1000" in p for p in huge)


def test_bonus_settings_are_points_on_the_card() -> None:
    assert config_problems({"bonus_cap": 100, "project_max": 100}) == []
    assert config_problems({"bonus_cap": 1e308, "project_max": 100.5}) == [
        "bonus_cap: at most 100 points (the whole scorecard)", "project_max: at most 100 points (the whole scorecard)"]


@settings(max_examples=200, deadline=None)
@given(st.fixed_dictionaries({c: st.floats(min_value=5e-324, max_value=1e308) for c in ("survey", "window", "online")}),
       st.floats(0, 1), st.integers(1, 10_000))
def test_every_accepted_channel_weighting_gives_a_finite_score(weights: dict[str, float], s: float, n: int) -> None:
    from scoring.method import ChannelSums, public_evaluation

    if config_problems({"channel_weights": weights}):
        return
    unit = {c: ChannelSums(n=n, sum_s=n * s, sum_s2=n * s * s, count=n) for c in ("window", "online")}
    result = public_evaluation(unit, unit, channel_weights=weights)
    assert math.isfinite(result.S) and 0 <= result.S <= 1 + 1e-9 and math.isfinite(result.points)
