"""The public evaluation of scoring-method.md, checked against numbers worked out by hand."""

from __future__ import annotations

import math

import pytest

from scoring.method import CHANNEL_OF, DEFAULT_CHANNEL_WEIGHTS, ChannelSums, public_evaluation, satisfaction


def plain(*levels: int) -> ChannelSums:
    """Window or online sums of these levels (each s = (level - 1) / 4), spelled out."""
    values = [(level - 1) / 4 for level in levels]
    return ChannelSums(n=float(len(values)), sum_s=sum(values), sum_s2=sum(v * v for v in values),
                       count=len(values))


# Unit: window levels 5, 4, 1, 2 -> s = 1, 0.75, 0, 0.25.
#   n = 4, mean = 2.0 / 4 = 0.5, mean of s^2 = (1 + 0.5625 + 0 + 0.0625) / 4 = 0.40625,
#   variance (ddof 0) = 0.40625 - 0.25 = 0.15625.
# City: 100 window ratings with sum 80 -> m = 0.8.
#   shrunk = (4 * 0.5 + 20 * 0.8) / (4 + 20) = 18 / 24 = 0.75.
UNIT_WINDOW = plain(5, 4, 1, 2)
CITY_WINDOW = ChannelSums(n=100.0, sum_s=80.0, sum_s2=70.0, count=100)


@pytest.mark.parametrize(("level", "s"), [(5, 1.0), (4, 0.75), (3, 0.5), (2, 0.25), (1, 0.0)])
def test_satisfaction_of_each_level(level: int, s: float) -> None:
    assert satisfaction(level) == s


def test_channels_of_method_step_2() -> None:
    assert CHANNEL_OF["window"] == "window"
    online = {"web", "mobile", "hotline", "face_to_face", "exhibit_hall", "open311", "follow_up"}
    assert {c for c, where in CHANNEL_OF.items() if where == "online"} == online
    assert "survey" not in CHANNEL_OF  # the survey arrives as its own events, weighted
    assert dict(DEFAULT_CHANNEL_WEIGHTS) == {"survey": 0.6, "window": 0.25, "online": 0.15}


def test_channel_sums_statistics() -> None:
    assert UNIT_WINDOW.n == 4 and UNIT_WINDOW.count == 4
    assert UNIT_WINDOW.mean == 0.5
    assert UNIT_WINDOW.variance == pytest.approx(0.15625)
    assert UNIT_WINDOW.effective_n == 4
    assert ChannelSums().mean is None
    assert ChannelSums().variance == 0.0


def test_one_channel_shrinks_toward_the_city() -> None:
    result = public_evaluation({"window": UNIT_WINDOW}, {"window": CITY_WINDOW})
    window = result.channels["window"]
    assert window["n"] == 4
    assert window["mean"] == pytest.approx(0.5)
    assert window["shrunk"] == pytest.approx(0.75)
    assert window["weight"] == 0.25
    # Only the window channel has ratings: S is its shrunk mean, whatever its weight.
    assert result.S == pytest.approx(0.75)
    assert result.points == pytest.approx(50 * 0.75)
    # Interval: S +- 1.96 * sqrt((1)^2 * (4 / 24)^2 * 0.15625 / 4).
    half = 1.96 * math.sqrt((4 / 24) ** 2 * 0.15625 / 4)
    assert half == pytest.approx(0.064563, abs=1e-6)
    assert result.interval is not None
    assert result.interval[0] == pytest.approx(0.75 - half)
    assert result.interval[1] == pytest.approx(0.75 + half)
    assert result.warnings == []


def test_the_prior_strength_is_a_parameter() -> None:
    result = public_evaluation({"window": UNIT_WINDOW}, {"window": CITY_WINDOW}, prior_strength=4)
    # (4 * 0.5 + 4 * 0.8) / (4 + 4) = 5.2 / 8 = 0.65
    assert result.channels["window"]["shrunk"] == pytest.approx(0.65)
    assert result.S == pytest.approx(0.65)
    half = 1.96 * math.sqrt((4 / 8) ** 2 * 0.15625 / 4)
    assert result.interval == pytest.approx((0.65 - half, 0.65 + half))


def test_the_blend_uses_only_channels_with_ratings() -> None:
    # Online: ten ratings of level 3 (s = 0.5, variance 0); city online mean 30 / 50 = 0.6.
    #   shrunk = (10 * 0.5 + 20 * 0.6) / 30 = 17 / 30.
    # No survey: S = (0.25 * 0.75 + 0.15 * 17/30) / (0.25 + 0.15) = 0.2725 / 0.4 = 0.68125.
    unit = {"window": UNIT_WINDOW, "online": plain(*[3] * 10)}
    city = {"window": CITY_WINDOW, "online": ChannelSums(n=50.0, sum_s=30.0, sum_s2=20.0, count=50),
            "survey": ChannelSums(n=1000.0, sum_s=900.0, sum_s2=850.0, sum_w2=1000.0, count=1000)}
    result = public_evaluation(unit, city)
    assert result.channels["online"]["shrunk"] == pytest.approx(17 / 30)
    assert result.channels["survey"]["n"] == 0
    assert result.channels["survey"]["shrunk"] is None
    assert result.S == pytest.approx(0.68125)
    assert result.points == pytest.approx(50 * 0.68125)
    # The online channel has no spread, so only the window term is left.
    half = 1.96 * math.sqrt((0.25 / 0.4) ** 2 * (4 / 24) ** 2 * 0.15625 / 4)
    assert result.interval == pytest.approx((0.68125 - half, 0.68125 + half))


def test_the_survey_uses_its_weights_and_effective_sample_size() -> None:
    # Four households: three of weight 2 (s = 1, 1, 0.5) and one of weight 4 (s = 0).
    #   sum w = 10, sum w*s = 5 -> mean 0.5; sum w*s^2 = 4.5 -> variance 0.45 - 0.25 = 0.2;
    #   sum w^2 = 4 + 4 + 4 + 16 = 28 -> effective n = 10^2 / 28 = 3.5714...
    survey = ChannelSums(n=10.0, sum_s=5.0, sum_s2=4.5, sum_w2=28.0, count=4)
    city_survey = ChannelSums(n=50.0, sum_s=35.0, sum_s2=30.0, sum_w2=100.0, count=30)  # m = 0.7
    result = public_evaluation({"survey": survey, "window": UNIT_WINDOW},
                               {"survey": city_survey, "window": CITY_WINDOW})
    n_eff = 100 / 28
    shrunk_survey = (n_eff * 0.5 + 20 * 0.7) / (n_eff + 20)
    assert shrunk_survey == pytest.approx(0.669697, abs=1e-6)
    entry = result.channels["survey"]
    assert entry["n"] == 4
    assert entry["effective_n"] == pytest.approx(n_eff)
    assert entry["mean"] == pytest.approx(0.5)
    assert entry["shrunk"] == pytest.approx(shrunk_survey)
    assert entry["weight"] == 0.6
    s_value = (0.6 * shrunk_survey + 0.25 * 0.75) / (0.6 + 0.25)
    assert result.S == pytest.approx(s_value)
    variance = ((0.6 / 0.85) ** 2 * (n_eff / (n_eff + 20)) ** 2 * 0.2 / n_eff
                + (0.25 / 0.85) ** 2 * (4 / 24) ** 2 * 0.15625 / 4)
    half = 1.96 * math.sqrt(variance)
    assert result.interval == pytest.approx((s_value - half, s_value + half))


def test_custom_channel_weights_and_points() -> None:
    unit = {"window": UNIT_WINDOW, "online": plain(*[3] * 10)}
    city = {"window": CITY_WINDOW, "online": ChannelSums(n=50.0, sum_s=30.0, sum_s2=20.0, count=50)}
    result = public_evaluation(unit, city, channel_weights={"survey": 0.5, "window": 0.1, "online": 0.3},
                               w_public=40)
    s_value = (0.1 * 0.75 + 0.3 * 17 / 30) / 0.4
    assert s_value == pytest.approx(0.6125)
    assert result.S == pytest.approx(s_value)
    assert result.points == pytest.approx(40 * s_value)
    assert result.channels["window"]["weight"] == 0.1


def test_the_interval_is_clamped_to_0_and_1() -> None:
    # Two ratings, 5 and 1: mean 0.5, variance 0.25; the city is all 5s (m = 1).
    #   shrunk = (2 * 0.5 + 20 * 1) / 22 = 21 / 22 = 0.9545...; half = 1.96 * sqrt((2/22)^2 * 0.25 / 2)
    #   = 0.0630..., so the upper end 1.0176 is clamped to 1.
    result = public_evaluation({"window": plain(5, 1)}, {"window": ChannelSums(n=10.0, sum_s=10.0,
                                                                             sum_s2=10.0, count=10)})
    half = 1.96 * math.sqrt((2 / 22) ** 2 * 0.25 / 2)
    assert 21 / 22 + half > 1
    assert result.S == pytest.approx(21 / 22)
    assert result.interval == pytest.approx((21 / 22 - half, 1.0))
    low = public_evaluation({"window": plain(5, 1)}, {"window": ChannelSums(n=10.0, sum_s=0.0, count=10)})
    assert low.S == pytest.approx(1 / 22)
    assert low.interval == pytest.approx((0.0, 1 / 22 + half))


def test_no_rating_in_any_channel_is_0_with_a_warning() -> None:
    result = public_evaluation({}, {"window": CITY_WINDOW})
    assert result.S == 0.0
    assert result.points == 0.0
    assert result.interval is None
    assert len(result.warnings) == 1 and "no rating" in result.warnings[0]
    assert set(result.channels) == {"survey", "window", "online"}
    assert all(c["n"] == 0 and c["mean"] is None and c["shrunk"] is None for c in result.channels.values())


def test_a_channel_outside_the_configured_weights_is_ignored() -> None:
    result = public_evaluation({"social": plain(1, 1, 1)}, {"social": plain(1, 1, 1)})
    assert result.S == 0.0
    assert "social" not in result.channels
