"""Chinese and English words of the pages, and dates and numbers formatted for each language."""

from __future__ import annotations

from datetime import date, datetime
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
    "token_help": ("请粘贴委员会或单位联络员的令牌。", "Paste a commission or unit coordinator token."),
    "bad_token": ("令牌无效或已吊销。", "The token is invalid, expired or revoked."),
    "ranking": ("排名", "Ranking"),
    "rank": ("名次", "Rank"),
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
    "unsatisfactory": ("不满意", "Unsatisfactory"),
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
}


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


def day(value: date | datetime | str | None, lang: Lang) -> str:
    """29 Nov 2026 / 2026年11月29日."""
    if value is None:
        return "—"
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    d = value.date() if isinstance(value, datetime) else value
    return f"{d.year}年{d.month}月{d.day}日" if lang == "zh" else f"{d.day} {MONTHS_EN[d.month - 1]} {d.year}"


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
