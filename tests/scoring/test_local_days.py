"""consumers.LocalDays: each moment's local date as astimezone gives it, around every transition and midnight."""

from __future__ import annotations

import functools
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import TypeAdapter

from scoring.consumers import LocalDays

# Zones with daylight saving at midnight (Havana, Sao Paulo until 2019, Santiago), half-hour saving (Lord
# Howe), odd offsets (Kolkata, St John's, Chatham, Kathmandu), a skipped day (Apia, 2011), yearly moves
# (Casablanca), none at all (Shanghai).
ZONES = ["Asia/Shanghai", "Europe/London", "America/Sao_Paulo", "America/Havana", "America/Santiago",
         "Australia/Lord_Howe", "Asia/Kolkata", "America/St_Johns", "Pacific/Chatham", "Asia/Kathmandu",
         "Pacific/Apia", "Africa/Casablanca"]
# The clocks moments come with: fixed offsets (pydantic's TzInfo, the stdlib's timezone), a zone's own
# clock with daylight saving, and none (naive: astimezone takes it as the machine's local time).
OFFSETS = [timedelta(0), timedelta(hours=8), timedelta(hours=-3, minutes=-30), timedelta(hours=5, minutes=45),
           timedelta(hours=-11), timedelta(hours=14), timedelta(minutes=1, seconds=37)]
PYDANTIC = TypeAdapter(datetime)


@functools.cache
def _changes(zone: str) -> list[datetime]:
    """The zone's transitions (to the second) and local midnights near them, 2010 to 2027, as UTC instants."""
    tz = ZoneInfo(zone)
    out: list[datetime] = []
    day = datetime(2010, 1, 1, tzinfo=UTC)
    offset = day.astimezone(tz).utcoffset()
    while day.year < 2028:
        following = day + timedelta(days=1)
        if following.astimezone(tz).utcoffset() != offset:
            low, high = day, following  # the offset changes in (low, high]: to the second
            while high - low > timedelta(seconds=1):
                middle = low + (high - low) / 2
                if middle.astimezone(tz).utcoffset() == offset:
                    low = middle
                else:
                    high = middle
            local = high.astimezone(tz)
            midnight = datetime.combine(local.date(), datetime.min.time(), tzinfo=tz)
            out += [high, midnight.astimezone(UTC), (midnight + timedelta(days=1)).astimezone(UTC)]
            offset = local.utcoffset()
        day = following
    return out or [datetime(2026, 1, 1, 16, tzinfo=UTC)]


@st.composite
def _moments(draw: st.DrawFn, zone: str) -> datetime:
    near = draw(st.sampled_from(_changes(zone)))
    instant = near + timedelta(seconds=draw(st.integers(-3 * 3600, 3 * 3600)),
                               microseconds=draw(st.integers(0, 999_999)))
    clock = draw(st.sampled_from(["pydantic", "stdlib", "zone", "naive"]))
    if clock == "zone":
        return instant.astimezone(ZoneInfo(draw(st.sampled_from(ZONES))))
    if clock == "naive":
        return instant.replace(tzinfo=None)
    # (pydantic reads offsets in whole minutes only)
    offset = draw(st.sampled_from(OFFSETS if clock == "stdlib" else OFFSETS[:-1]))
    moment = instant.astimezone(timezone(offset))
    return PYDANTIC.validate_python(moment.isoformat()) if clock == "pydantic" else moment


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_local_days_are_the_zones_dates(data: st.DataObject) -> None:
    """A run of moments near the zone's transitions and midnights (and again, so hours remembered are
    read back): every one gets the date astimezone gives it."""
    zone = data.draw(st.sampled_from(ZONES))
    tz = ZoneInfo(zone)
    moments = data.draw(st.lists(_moments(zone), min_size=1, max_size=40))
    days = LocalDays(tz)
    for moment in [*moments, *moments]:
        assert days(moment) == moment.astimezone(tz).date(), (zone, moment)


def test_an_hour_of_a_fixed_clock_is_remembered_unless_its_local_date_changes_inside() -> None:
    """Shanghai (UTC+8): 15:00-16:00 UTC falls on the 1st there, 16:00 UTC starts the 2nd; Kolkata (UTC+5:30)
    starts its day at 18:30 UTC, inside an hour of a UTC clock, which is converted moment by moment."""
    shanghai, kolkata = LocalDays(ZoneInfo("Asia/Shanghai")), LocalDays(ZoneInfo("Asia/Kolkata"))
    moment = PYDANTIC.validate_python("2026-03-01T15:10:00Z")
    assert shanghai(moment) == datetime(2026, 3, 1).date()
    assert shanghai.hours == {(moment.tzinfo, moment.date(), 15): datetime(2026, 3, 1).date()}
    assert shanghai(PYDANTIC.validate_python("2026-03-01T16:00:00Z")) == datetime(2026, 3, 2).date()
    assert kolkata(PYDANTIC.validate_python("2026-03-01T18:29:59Z")) == datetime(2026, 3, 1).date()
    assert kolkata(PYDANTIC.validate_python("2026-03-01T18:30:00Z")) == datetime(2026, 3, 2).date()
    assert not kolkata.hours and len(kolkata.mixed) == 1


def test_a_repeated_hour_of_a_clock_with_daylight_saving_is_converted_moment_by_moment() -> None:
    """London's clock shows 01:00-02:00 twice on 2026-10-25 (00:00-01:00 UTC, then 01:00-02:00): on Cape
    Verde's (UTC-1) the first falls on the 24th, the second on the 25th. One clock hour, two dates."""
    london, days = ZoneInfo("Europe/London"), LocalDays(ZoneInfo("Atlantic/Cape_Verde"))
    first = datetime(2026, 10, 25, 0, 20, tzinfo=UTC).astimezone(london)
    second = datetime(2026, 10, 25, 1, 20, tzinfo=UTC).astimezone(london)
    assert (first.hour, first.fold, second.hour, second.fold) == (1, 0, 1, 1)
    for _ in range(2):
        assert days(first) == datetime(2026, 10, 24).date()
        assert days(second) == datetime(2026, 10, 25).date()


class _BackAcrossMidnight(tzinfo):
    """A zone that turns its clocks back from 00:30 to 23:30 (UTC+8 to UTC+7) at 16:30 UTC on 2026-03-01:
    its date goes back across midnight, which no zone of the tz database does today."""

    SWITCH = datetime(2026, 3, 1, 16, 30)
    BEFORE, AFTER = timedelta(hours=8), timedelta(hours=7)

    def fromutc(self, dt: datetime) -> datetime:
        naive = dt.replace(tzinfo=None)
        if naive < self.SWITCH:
            return (naive + self.BEFORE).replace(tzinfo=self)
        local = naive + self.AFTER
        return local.replace(tzinfo=self, fold=int(local - self.BEFORE < self.SWITCH))

    def utcoffset(self, dt: datetime | None) -> timedelta | None:
        if dt is None:
            return None
        wall = dt.replace(tzinfo=None)
        before_ok, after_ok = wall - self.BEFORE < self.SWITCH, wall - self.AFTER >= self.SWITCH
        if before_ok and after_ok:
            return self.AFTER if dt.fold else self.BEFORE
        return self.BEFORE if before_ok else self.AFTER

    def dst(self, dt: datetime | None) -> timedelta | None:
        return None

    def tzname(self, dt: datetime | None) -> str | None:
        return "BACK"


def test_an_hour_whose_dates_agree_at_both_ends_but_not_inside_is_converted_moment_by_moment() -> None:
    """On a UTC+5:15 clock, 21:00-22:00 (15:45-16:45 UTC) starts at 23:45 and ends at 23:45 on the 1st in that
    zone, but shows 00:00-00:30 on the 2nd between: the zone's offset differs at the two ends."""
    zone = _BackAcrossMidnight()
    clock = timezone(timedelta(hours=5, minutes=15))
    days = LocalDays(zone)
    moments = [datetime(2026, 3, 1, 15, 50, tzinfo=UTC), datetime(2026, 3, 1, 16, 10, tzinfo=UTC),
               datetime(2026, 3, 1, 16, 40, tzinfo=UTC)]
    expected = [datetime(2026, 3, 1).date(), datetime(2026, 3, 2).date(), datetime(2026, 3, 1).date()]
    assert [m.astimezone(zone).date() for m in moments] == expected
    assert {m.astimezone(clock).hour for m in moments} == {21}
    for _ in range(2):
        assert [days(m.astimezone(clock)) for m in moments] == expected
