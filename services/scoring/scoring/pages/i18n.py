"""Chinese and English words of the pages, and dates and numbers formatted for each language."""

from __future__ import annotations

import unicodedata
from datetime import date, datetime, tzinfo
from typing import Literal

from yardstick.city import CityProfile

Lang = Literal["zh", "en"]
LANGS: tuple[Lang, ...] = ("zh", "en")
DEFAULT: Lang = "zh"

WORDS: dict[str, tuple[str, str]] = {
    # key: (Chinese, English)
    "dashboard": ("绩效看板", "Performance dashboard"),
    "public": ("绩效公开", "Published results"),
    "report": ("年度民意分析报告", "Annual public-opinion analysis"),
    "sign_in": ("登录", "Sign in"),
    "sign_out": ("退出", "Sign out"),
    "token": ("访问令牌", "Access token"),
    "token_help": ("请粘贴委员会、市领导或单位联络员的令牌。",
                   "Paste a commission, city leader or unit coordinator token."),
    "bad_token": ("令牌无效、已过期或已吊销。", "The token is invalid, expired or revoked."),
    "no_dashboard": ("该令牌有效，但此角色没有绩效看板：看板供委员会、市领导和单位联络员使用。",
                     "This token is valid, but its role has no dashboard: the dashboard is for the commission, "
                     "city leaders and unit coordinators."),
    "role": ("角色", "Role"),
    "role_citizen": ("市民", "citizen"),
    "role_staff": ("工作人员", "staff"),
    "role_kiosk": ("窗口评价器", "kiosk"),
    "role_assessor": ("评审专家", "assessor"),
    "role_commission": ("考评委员会", "commission"),
    "role_leader": ("市领导", "leader"),
    "role_coordinator": ("单位联络员", "coordinator"),
    "ranking": ("排名", "Ranking"),
    "rank": ("名次", "Rank"),
    "rank_total": ("名次（按总分）", "Rank (by total score)"),
    "unit": ("单位", "Unit"),
    "total": ("总分", "Total"),
    "public_c": ("公众评价", "Public"),
    "targets_c": ("目标完成", "Targets"),
    "leaders_c": ("领导评价", "Leaders"),
    "bonus_c": ("创新加分", "Bonus"),
    "adjustments_c": ("调整", "Adjustments"),
    "grade": ("等次", "Grade"),
    "excellent": ("优秀", "Excellent"),
    "good": ("良好", "Good"),
    "unsatisfactory": ("不合格", "Unsatisfactory"),
    "year": ("年度", "Year"),
    "live": ("实时", "live"),
    "draft": ("公示稿", "draft"),
    "final": ("终定", "final"),
    "scorecard": ("绩效评分卡", "Scorecard"),
    "channel": ("渠道", "Channel"),
    "survey": ("入户调查", "Household survey"),
    "window": ("窗口评价器", "Service-window kiosks"),
    "online": ("网络及热线", "Online and hotline"),
    "web": ("网站", "Web"),
    "mobile": ("手机", "Mobile"),
    "hotline": ("热线", "Hotline"),
    "face_to_face": ("面对面", "Face to face"),
    "exhibit_hall": ("展厅", "Exhibit hall"),
    "social": ("社交媒体", "Social media"),
    "open311": ("Open311", "Open311"),
    "n": ("样本数", "n"),
    "mean": ("均值", "Mean"),
    "shrunk": ("收缩均值", "Shrunk mean"),
    "weight": ("权重", "Weight"),
    "interval": ("95%区间", "95% interval"),
    "weekly_satisfaction": ("每周满意度（按渠道）", "Weekly satisfaction by channel"),
    "week": ("周", "Week"),
    "satisfaction": ("满意度", "Satisfaction"),
    "top_categories": ("主要投诉类别及趋势", "Top complaint categories and their trend"),
    "category": ("类别", "Category"),
    "negative": ("负面件数", "Negative items"),
    "trend": ("趋势", "Trend"),
    "targets": ("目标进度", "Targets' progress"),
    "target": ("目标", "Target"),
    "baseline": ("基线", "Baseline"),
    "latest": ("最新值", "Latest"),
    "projection": ("预测", "Projection"),
    "trajectory": ("计划轨迹", "Trajectory"),
    "status": ("状态", "Status"),
    "on_track": ("正常", "on track"),
    "at_risk": ("有风险", "at risk"),
    "off_track": ("偏离", "off track"),
    "no_data": ("无数据", "no data"),
    "notices": ("整改通知", "Improvement notices"),
    "open_notices": ("全市未结整改通知", "Open notices across the city"),
    "open_notices_of": ("{unit}未结整改通知", "Open notices of {unit}"),
    "notice_register": ("整改通知公示", "Register of notices"),
    "rule": ("规则", "Rule"),
    "subject": ("对象", "Subject"),
    "severity": ("严重程度", "Severity"),
    "issued_at": ("下发日期", "Issued"),
    "deadline": ("期限", "Deadline"),
    "overdue": ("逾期", "Overdue"),
    "evidence": ("证据", "Evidence"),
    "history": ("进程", "History"),
    "none": ("暂无", "None"),
    "acknowledge": ("签收", "acknowledge"),
    "plan": ("提交整改方案", "submit a plan"),
    "resolve": ("完成整改", "resolve"),
    "next_step": ("下一步", "Next step"),
    "verify": ("验收", "verification"),
    "issued": ("已下发", "issued"),
    "acknowledged": ("已签收", "acknowledged"),
    "plan_submitted": ("已报整改方案", "plan submitted"),
    "resolved": ("已整改", "resolved"),
    "verified": ("已验收", "verified"),
    "normal": ("一般", "normal"),
    "escalated": ("升级", "escalated"),
    "complaint-recurrence": ("投诉反复", "Recurring complaints"),
    "satisfaction-drop": ("满意度下降", "Satisfaction drop"),
    "target-off-track": ("目标偏离", "Target off track"),
    "recurrence-after-rectification": ("整改后复发", "Recurrence after rectification"),
    "plan_actions": ("整改措施", "Plan"),
    "observed_on": ("问题发现于", "seen on"),
    "commitment": ("公开承诺", "Commitment"),
    "due": ("承诺期限", "due"),
    "outcome": ("结果", "Outcome"),
    "verified_on": ("验收于", "verified on"),
    "reopened": ("退回重新整改", "reopened"),
    "in_progress": ("整改中", "in progress"),
    "old_events": ("（该通知早于公开整改方案的事件版本）", "(this notice predates events that carry the plan)"),
    "sat_last": ("上年满意度", "Last year"),
    "sat_change": ("同比变化", "Change"),
    "unit_public": ("单位公开信息", "Unit results"),
    "final_cards": ("已终定的评分", "Final scorecards"),
    "no_final": ("尚无终定年度。", "No year has been finalized yet."),
    "tracking": ("查询办理进度", "Track your feedback"),
    "tracking_code": ("查询码", "Tracking code"),
    "look_up": ("查询", "Look up"),
    "not_published": ("该年度结果尚未公布。", "The results of this year are not published yet."),
    "warnings": ("数据提示", "Data warnings"),
    "volume": ("各渠道每月意见数量", "Feedback volume by channel and month"),
    "month": ("月份", "Month"),
    "sat_by_unit": ("各单位满意度", "Satisfaction by unit"),
    "category_shares": ("各类别在负面意见中的占比", "Each category's share of negative feedback"),
    "share_this": ("本年占比", "Share this year"),
    "share_last": ("上年占比", "Share last year"),
    "change": ("变化", "Change"),
    "p_value": ("p值", "p-value"),
    "q_value": ("q值（BH校正）", "q-value (BH-adjusted)"),
    "notices_year": ("整改通知及成效", "Notices, outcomes and effects"),
    "before": ("整改前每周负面件数", "Negative items a week before"),
    "after": ("验收后每周负面件数", "Negative items a week after"),
    "priorities": ("明年重点领域", "Priority areas for next year"),
    "priorities_none": ("没有类别的负面占比显著上升。", "No category's share of negative feedback rose significantly."),
    "test_used": ("检验方法", "Test used"),
    "count": ("数量", "Count"),
    "all": ("合计", "All"),
    "language": ("语言", "Language"),
    "skip": ("跳到正文", "Skip to content"),
    "updated_live": ("页面随数据实时更新", "This page updates as data arrives"),
    "forbidden": ("此令牌无权查看该单位。", "This token does not cover that unit."),
    "report_link": ("年度报告", "Annual report"),
    "print": ("打印 / 存为PDF", "Print / save as PDF"),
    "unit_page": ("单位详情", "Unit page"),
    "group": ("组别", "Group"),
    "main_nav": ("主导航", "Main"),
    "show": ("查看", "Show"),
    "weekly_table": ("每周满意度数值表（%）", "Weekly satisfaction as a table (%)"),
    "no_data_year": ("{year}年度尚无数据。", "There is no data for {year} yet."),
    "no_data_status": ("无数据", "no data"),
    "not_published_year": ("（未公布）", "(not published)"),
    "pp": ("{value}个百分点", "{value} pp"),
    "error": ("出错了", "Something went wrong"),
    "error_400": ("请求有误。", "The request is not valid."),
    "error_401": ("请先登录。", "Please sign in first."),
    "error_403": ("您无权查看此页面。", "You may not see this page."),
    "error_404": ("找不到该页面。", "This page does not exist."),
    "error_422": ("请求中有无效的值。", "The request has a value that is not valid."),
    "error_429": ("请求过于频繁，请稍后再试。", "Too many requests: please try again shortly."),
    "bad_year": ("年度须为1900至9999之间的四位数字。", "The year must be four digits, 1900 to 9999."),
    "report_not_final": ("该年度报告在结果终定后公开；之前须由委员会或市领导登录查看。",
                         "This year's report is public once its results are final; until then the commission "
                         "and city leaders may read it after signing in."),
    "report_role": ("此角色在年度结果终定前不能查看年度报告。",
                    "This role may not read the report before the year's results are final."),
    "unknown_unit": ("城市名录中没有该单位。", "That unit is not in the city profile."),
    "bad_code": ("查询码为4至64位字母、数字或连字符。", "A tracking code is 4 to 64 letters, digits or hyphens."),
    "back_to_public": ("返回绩效公开页", "Back to the published results"),
    "go_sign_in": ("登录", "Sign in"),
}

# The numbers a detector gives as a notice's evidence (notices.md) and a verification's figures.
EVIDENCE: dict[str, tuple[str, str]] = {
    "window_count": ("观察期件数", "items in the window"),
    "baseline_count": ("基线期件数", "items in the baseline"),
    "window_days": ("观察期天数", "window days"),
    "baseline_days": ("基线期天数", "baseline days"),
    "baseline_rate_per_day": ("基线期日均件数", "baseline items a day"),
    "expected_count": ("预期件数", "expected items"),
    "p0": ("零假设比例", "null share"),
    "p_value": ("p值", "p"),
    "q_value": ("q值（BH校正）", "q (BH-adjusted)"),
    "cells_tested": ("检验单元数", "cells tested"),
    "alpha": ("显著性水平", "significance level"),
    "min_count": ("最少件数", "minimum items"),
    "history_days": ("历史天数", "days of history"),
    "n": ("评价数", "ratings"),
    "satisfied": ("满意数", "satisfied"),
    "share": ("满意比例", "share satisfied"),
    "wilson_low": ("区间下限", "interval low"),
    "wilson_high": ("区间上限", "interval high"),
    "previous_n": ("上期评价数", "ratings before"),
    "previous_satisfied": ("上期满意数", "satisfied before"),
    "previous_share": ("上期满意比例", "share satisfied before"),
    "previous_days": ("上期天数", "days before"),
    "min_ratings": ("最少评价数", "minimum ratings"),
    "threshold": ("阈值", "threshold"),
    "drop": ("下降幅度阈值", "drop"),
    "off_track_in_a_row": ("连续偏离次数", "off-track reports in a row"),
    "consecutive_reports": ("触发所需连续次数", "reports in a row that fire"),
}
PROBABILITIES = frozenset({"p_value", "q_value"})

# The words a detector gives in its evidence beside its numbers (notices/detectors.py): why it fired and
# how it decided, shown as sentences. Words not listed here are not shown (content._words).
EVIDENCE_WORDS: dict[tuple[str, str], tuple[str, str]] = {
    ("decided_by", "test"): ("按显著性检验判定", "decided by the significance test"),
    ("decided_by", "min_count"): ("历史数据不足35天，按最少件数判定",
                                  "under 35 days of history: decided by the minimum count alone"),
    ("reason", "below_threshold"): ("满意比例区间上限低于阈值",
                                    "the satisfied share's upper bound is under the threshold"),
    ("reason", "dropped"): ("满意比例较上期明显下降", "the satisfied share dropped from the period before"),
    ("reason", "off_track"): ("连续偏离目标", "off track report after report"),
    ("reason", "no_data"): ("未按时报送进度", "no progress reported"),
    ("kind", "window"): ("依据窗口评价器评价", "on the kiosk ratings at the window"),
    ("kind", "unit"): ("依据线上评价", "on the online ratings"),
}
TARGET_STATUSES = frozenset({"on_track", "at_risk", "off_track", "no_data"})
DAY_KEYS = ("day", "reports_after")  # evidence that is a calendar day
EVIDENCE_KEYS: dict[str, tuple[str, str]] = {"latest_status": ("最新状态", "latest status"),
                                              "window": ("观察期", "window"), "day": ("评估日", "day evaluated"),
                                              "reports_after": ("核实后报送自", "reports since")}


def word(key: str, lang: Lang) -> str:
    pair = WORDS.get(key)
    if pair is None:
        return key
    return pair[0] if lang == "zh" else pair[1]


def pick(value: str | None) -> Lang:
    return "en" if value == "en" else "zh" if value == "zh" else DEFAULT


def unit_name(city: CityProfile, unit_id: str, lang: Lang) -> str:
    if unit_id not in city.unit_ids:
        return unit_id
    unit = city.unit(unit_id)
    return unit.name_zh if lang == "zh" else unit.name


def category_name(city: CityProfile, category_id: str, lang: Lang) -> str:
    if category_id not in city.category_ids:
        return category_id
    category = city.category(category_id)
    return category.name_zh if lang == "zh" else category.name


def group_name(city: CityProfile, group_id: str, lang: Lang) -> str:
    if group_id not in city.group_ids:
        return group_id
    group = city.group(group_id)
    return (group.name_zh or group.name) if lang == "zh" else group.name


MONTHS_EN = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def local_date(value: date | datetime | str, tz: tzinfo | None) -> date:
    """The calendar day of a date or timestamp in the city's time zone (`tz`).

    A timestamp with a zone is converted first: 20:45 UTC on 30 Nov is 1 Dec in Shanghai. A plain
    date, or a timestamp without a zone, is taken as already local.
    """
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if isinstance(value, datetime):
        if tz is not None and value.tzinfo is not None:
            value = value.astimezone(tz)
        return value.date()
    return value


def day(value: date | datetime | str | None, lang: Lang, tz: tzinfo | None = None) -> str:
    """29 Nov 2026 / 2026年11月29日, in the city's time zone when given."""
    if value is None:
        return "—"
    d = local_date(value, tz)
    return f"{d.year}年{d.month}月{d.day}日" if lang == "zh" else f"{d.day} {MONTHS_EN[d.month - 1]} {d.year}"


def short_day(value: date, lang: Lang) -> str:
    """29 Nov / 11月29日: an axis label, the year being in the chart's heading."""
    return f"{value.month}月{value.day}日" if lang == "zh" else f"{value.day} {MONTHS_EN[value.month - 1]}"


def month(m: int, lang: Lang) -> str:
    return f"{m}月" if lang == "zh" else MONTHS_EN[m - 1]


def number(value: float | int | None, lang: Lang, digits: int = 1) -> str:
    """Grouped thousands in both languages; the Chinese page writes 万 for ten thousands and more."""
    if value is None:
        return "—"
    if lang == "zh" and isinstance(value, int) and abs(value) >= 100_000:
        return f"{value / 10_000:,.1f}万"
    if isinstance(value, int):
        return f"{value:,}"
    return f"{value:,.{digits}f}"


def percent(value: float | None, lang: Lang, digits: int = 1) -> str:
    if value is None:
        return "—"
    return f"{value * 100:.{digits}f}%"


def points(value: float | None, lang: Lang, digits: int = 1) -> str:
    """A change between two shares, in percentage points (+2.5 pp / +2.5个百分点), never in per cent."""
    if value is None:
        return "—"
    return word("pp", lang).format(value=f"{value * 100:+.{digits}f}")


def probability(value: float | None, lang: Lang) -> str:
    """A p- or q-value: three decimals, and "< 0.001" below that (4e-10 is not 0.000)."""
    if value is None:
        return "—"
    if value < 0.001:
        return "< 0.001"
    return f"{value:.3f}"


def evidence(key: str, value: float | int, lang: Lang) -> str:
    """One figure of a notice's evidence, named in the page's language: "观察期件数 7", "p < 0.001"."""
    pair = EVIDENCE.get(key)
    name = (pair[0] if lang == "zh" else pair[1]) if pair else key
    if key in PROBABILITIES:
        shown = probability(float(value), lang)
    elif isinstance(value, float) and not value.is_integer():
        shown = number(value, lang, 3)
    else:
        shown = number(int(value), lang)
    if shown.startswith("<"):
        return f"{name} {shown}"
    return f"{name}：{shown}" if lang == "zh" else f"{name}: {shown}"


def evidence_words(key: str, value: str | list[str], lang: Lang, tz: tzinfo | None = None) -> str:
    """One of a notice's evidence given in words: "判定依据…", "window: 1 Nov 2026 – 14 Nov 2026"."""
    if isinstance(value, list):  # a span of days
        shown = " – ".join(day(v, lang, tz) for v in value)
    elif (key, value) in EVIDENCE_WORDS:
        return EVIDENCE_WORDS[key, value][0 if lang == "zh" else 1]
    elif key in DAY_KEYS:
        shown = day(value, lang, tz)
    else:  # a target's status
        shown = word(value, lang)
    name = EVIDENCE_KEYS[key][0 if lang == "zh" else 1]  # content._words passes no other key
    return f"{name}：{shown}" if lang == "zh" else f"{name}: {shown}"


def role(value: str, lang: Lang) -> str:
    return word(f"role_{value}", lang) if f"role_{value}" in WORDS else value


def text_width(text: str, size: float = 11.0) -> float:
    """A text's width in an SVG at this font size, estimated: wide (CJK) characters a full em, others 0.6."""
    return sum(size if unicodedata.east_asian_width(ch) in ("W", "F") else size * 0.6 for ch in text)
