"""The charts of each page, drawn from the content gathered for it (pure: plain data in, SVG out)."""

from __future__ import annotations

from datetime import date
from typing import Any

from markupsafe import Markup

from scoring.pages import svg
from scoring.pages.i18n import Lang, category_name, month, short_day, word
from yardstick.city import CityProfile


def unit_charts(page: dict[str, Any], *, year: int, lang: Lang, city: CityProfile) -> dict[str, Any]:
    series = [svg.Series(word(ch, lang), values) for ch, values in page["satisfaction"].items()]
    # Weeks placed by date: a week without ratings leaves its room, and breaks the line there.
    weekly = svg.line_chart(f'{word("weekly_satisfaction", lang)} {year}', [short_day(w, lang) for w in page["weeks"]],
                            series, y_min=0.0, y_max=1.0, xs=[float(w.toordinal()) for w in page["weeks"]],
                            max_gap=7.0)
    sparks = {c["category_id"]: svg.sparkline(f'{category_name(city, c["category_id"], lang)}: '
                                              f'{word("trend", lang)}', c["trend"]) for c in page["categories"]}
    targets: dict[str, Markup] = {}
    for tg in page["targets"]:
        points = [(p["date"], float(p["value"])) for p in tg["points"]]
        last = tg["points"][-1] if tg["points"] else None
        band = None
        if last is not None and last["projection"] is not None and last["low"] is not None \
                and last["high"] is not None:
            band = (last["date"], float(last["projection"]), float(last["low"]), float(last["high"]))
        targets[tg["target_id"]] = svg.target_chart(
            f'{tg["title"] or tg["code"]}: {word("targets", lang)}', start=date(year, 1, 1), end=date(year, 12, 31),
            baseline=float(tg["baseline"]), target=float(tg["target"]), points=points, band=band)
    return {"weekly": weekly, "weekly_legend": svg.legend(series), "sparks": sparks, "targets": targets}


def report_charts(report: dict[str, Any], *, lang: Lang, city: CityProfile) -> dict[str, Any]:
    channels = report["volume"]["channels"]
    series = [svg.Series(word(ch, lang), [float(n) for n in counts]) for ch, counts in channels.items()]
    volume = svg.line_chart(word("volume", lang), [month(m, lang) for m in report["volume"]["months"]], series,
                            y_min=0.0, y_format="{:,.0f}")
    top = [c for c in report["categories"] if c["share"] is not None][:12]
    shares = svg.bars(word("category_shares", lang),
                      [(category_name(city, c["category_id"], lang), c["share"]) for c in top],
                      x_max=max([c["share"] for c in top], default=1.0) or 1.0)
    return {"volume": volume, "volume_legend": svg.legend(series), "shares": shares}


def unit_history_chart(page: dict[str, Any], *, lang: Lang) -> Markup | None:
    """A unit's public satisfaction over its published years (none drawn for fewer than two)."""
    rated = [h for h in page["history"] if h["S"] is not None]
    if len(rated) < 2:
        return None
    series = [svg.Series(word("satisfaction", lang), [float(h["S"]) for h in rated])]
    return svg.line_chart(word("satisfaction", lang), [str(h["year"]) for h in rated], series, y_min=0.0, y_max=1.0,
                          xs=[float(h["year"]) for h in rated], max_gap=1.0)
