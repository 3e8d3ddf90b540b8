"""scoring's tables: aggregates of the consumed topics, the commission's inputs, and closed years."""

from __future__ import annotations

from sqlalchemy import JSON, Boolean, Column, Date, DateTime, Float, Integer, String, Table, Text

from yardstick.auth import revoked_table
from yardstick.consumer import processed_table
from yardstick.db import new_metadata
from yardstick.outbox import outbox_table

metadata = new_metadata()

# --- read model: aggregates of feedback.v1, survey.v1 and targets.v1 (rebuilt by replay) ---

# Counted ratings per unit, channel and local day: n, sum of s and of s^2 (for the variance).
channel_days = Table(
    "channel_days", metadata,
    Column("unit_id", String(100), primary_key=True),
    Column("channel", String(20), primary_key=True),
    Column("day", Date, primary_key=True),
    Column("year", Integer, nullable=False, index=True),
    Column("n", Integer, nullable=False),
    Column("sum_s", Float, nullable=False),
    Column("sum_s2", Float, nullable=False),
)

# The same per unit, channel and year: what a recompute reads (a few hundred rows, not a year of days).
channel_years = Table(
    "channel_years", metadata,
    Column("unit_id", String(100), primary_key=True),
    Column("channel", String(20), primary_key=True),
    Column("year", Integer, primary_key=True),
    Column("n", Integer, nullable=False),
    Column("sum_s", Float, nullable=False),
    Column("sum_s2", Float, nullable=False),
)

surveys = Table(
    "surveys", metadata,
    Column("survey_id", String(100), primary_key=True),
    Column("year", Integer, nullable=False, index=True),
)

# Population N_h from the survey definition and accepted respondents n_h, per stratum.
survey_strata = Table(
    "survey_strata", metadata,
    Column("survey_id", String(100), primary_key=True),
    Column("stratum", String(100), primary_key=True),
    Column("year", Integer, nullable=False, index=True),
    Column("population", Integer, nullable=False),
    Column("respondents", Integer, nullable=False),
)

# A unit's survey ratings per stratum: weights are applied when read, as n_h keeps changing.
survey_cells = Table(
    "survey_cells", metadata,
    Column("year", Integer, primary_key=True),
    Column("unit_id", String(100), primary_key=True),
    Column("stratum", String(100), primary_key=True),
    Column("n", Integer, nullable=False),
    Column("sum_s", Float, nullable=False),
    Column("sum_s2", Float, nullable=False),
)

targets = Table(
    "targets", metadata,
    Column("target_id", String(100), primary_key=True),
    Column("unit_id", String(100), nullable=False),
    Column("year", Integer, nullable=False, index=True),
    Column("code", String(100), nullable=False),
    Column("kind", String(20), nullable=False),
    Column("direction", String(20), nullable=False),
    Column("baseline", Float, nullable=False),
    Column("target", Float, nullable=False),
    Column("weight", Float, nullable=False),
    Column("approved", Boolean, nullable=False),
    Column("withdrawn", Boolean, nullable=False),
)

# One value per target and date, corrections overwrite: the value as of a date is the latest row.
target_values = Table(
    "target_values", metadata,
    Column("target_id", String(100), primary_key=True),
    Column("date", Date, primary_key=True),
    Column("year", Integer, nullable=False, index=True),
    Column("value", Float, nullable=False),
)

# Items of a finalized year that arrived later: kept here, never in the frozen aggregates.
late_after_final = Table(
    "late_after_final", metadata,
    Column("year", Integer, primary_key=True),
    Column("unit_id", String(100), primary_key=True),
    Column("kind", String(20), primary_key=True),
    Column("n", Integer, nullable=False),
)

# --- the commission's inputs (owned here, not replayed) ---

configs = Table(
    "configs", metadata,
    Column("year", Integer, primary_key=True),
    Column("body", JSON, nullable=False),
)

leader_grades = Table(
    "leader_grades", metadata,
    Column("unit_id", String(100), primary_key=True),
    Column("year", Integer, primary_key=True),
    Column("leader", String(200), primary_key=True),
    Column("grade", Float, nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),
)

projects = Table(
    "projects", metadata,
    Column("project_id", String(64), primary_key=True),
    Column("unit_id", String(100), nullable=False),
    Column("year", Integer, nullable=False, index=True),
    Column("title", String(500), nullable=False),
    Column("summary", Text, nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

assessments = Table(
    "assessments", metadata,
    Column("project_id", String(64), primary_key=True),
    Column("assessor", String(200), primary_key=True),
    Column("points", Float, nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),
)

adjustments = Table(
    "adjustments", metadata,
    Column("adjustment_id", String(64), primary_key=True),
    Column("unit_id", String(100), nullable=False),
    Column("year", Integer, nullable=False, index=True),
    Column("points", Float, nullable=False),
    Column("reason", Text, nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),
)

objections = Table(
    "objections", metadata,
    Column("objection_id", String(64), primary_key=True),
    Column("unit_id", String(100), nullable=False),
    Column("year", Integer, nullable=False, index=True),
    Column("text", Text, nullable=False),
    Column("filed_at", DateTime(timezone=True), nullable=False),
    Column("answer", Text, nullable=True),
    Column("upheld", Boolean, nullable=True),
    Column("answered_at", DateTime(timezone=True), nullable=True),
)

# Who did what when, for every input the commission must defend.
audit = Table(
    "audit", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("actor_role", String(40), nullable=False),
    Column("actor", String(200), nullable=True),
    Column("action", String(60), nullable=False),
    Column("year", Integer, nullable=True, index=True),
    Column("subject", String(200), nullable=True),
    Column("details", JSON, nullable=False),
)

# --- years: a version bumped with every change (cache invalidation across instances), and closing ---

years = Table(
    "years", metadata,
    Column("year", Integer, primary_key=True),
    Column("version", Integer, nullable=False),
    Column("emitted_version", Integer, nullable=False, server_default="0"),
    # The version (and local day) the precomputed scorecards were computed from; reads never recompute.
    Column("computed_version", Integer, nullable=False, server_default="0"),
    Column("computed_on", Date, nullable=True),
    # Bumped with the version by every change but ratings: a pass that finds it unchanged reads the
    # ratings again and keeps the other inputs (targets, survey, grades, ...) it read before.
    Column("inputs_version", Integer, nullable=False, server_default="0"),
    Column("status", String(20), nullable=False, server_default="live"),
    Column("draft_at", DateTime(timezone=True), nullable=True),
    Column("finalized_at", DateTime(timezone=True), nullable=True),
    Column("forced", Boolean, nullable=True),
    Column("digest", String(64), nullable=True),
    Column("input_counts", JSON, nullable=True),
)

# Published snapshots: the draft (kind "draft") and the frozen final scorecards (kind "final").
published = Table(
    "published", metadata,
    Column("year", Integer, primary_key=True),
    Column("kind", String(10), primary_key=True),
    Column("unit_id", String(100), primary_key=True),
    Column("body", JSON, nullable=False),
)

# Every live scorecard of a year as the last debounced pass computed it (one pass, all units): what
# a scorecard or a ranking read answers. Not part of READ_MODEL: it is derived, and recomputed.
scorecards = Table(
    "scorecards", metadata,
    Column("year", Integer, primary_key=True),
    Column("unit_id", String(100), primary_key=True),
    Column("group_id", String(100), nullable=False),
    Column("rank", Integer, nullable=False),
    Column("body", JSON, nullable=False),
)

# What scorecard.updated last said per unit, so only changes are emitted, at most once a second.
emitted = Table(
    "emitted", metadata,
    Column("year", Integer, primary_key=True),
    Column("unit_id", String(100), primary_key=True),
    Column("total", Float, nullable=False),
    Column("components", JSON, nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),
)

# --- read model for the pages: complaints, target progress and notices (rebuilt by replay) ---

# Feedback items per unit, category and week (the Monday, local): all of them and the negative ones
# (notices.md: level <= 2, or a text with no level). Reassigned items move with their counts.
complaint_weeks = Table(
    "complaint_weeks", metadata,
    Column("unit_id", String(100), primary_key=True),
    Column("category_id", String(100), primary_key=True),
    Column("week", Date, primary_key=True),
    Column("year", Integer, primary_key=True),  # a week across New Year has a cell in each year
    Column("total", Integer, nullable=False),
    Column("negative", Integer, nullable=False),
)

# Every feedback.received per year, local month and channel (the report's volume table).
feedback_months = Table(
    "feedback_months", metadata,
    Column("year", Integer, primary_key=True),
    Column("month", Integer, primary_key=True),
    Column("channel", String(20), primary_key=True),
    Column("n", Integer, nullable=False),
)

# What target.progress said per target and date: the value and the tracker's projection then.
target_points = Table(
    "target_points", metadata,
    Column("target_id", String(100), primary_key=True),
    Column("date", Date, primary_key=True),
    Column("unit_id", String(100), nullable=False, index=True),
    Column("year", Integer, nullable=False),
    Column("value", Float, nullable=False),
    Column("status", String(20), nullable=False),
    Column("projection", Float, nullable=True),
    Column("low", Float, nullable=True),
    Column("high", Float, nullable=True),
)

# Titles and cadence of targets, which the scorecard's table does not keep.
target_titles = Table(
    "target_titles", metadata,
    Column("target_id", String(100), primary_key=True),
    Column("title", String(500), nullable=False),
    Column("public_commitment", Boolean, nullable=False),
)

# Notices as notices.v1 tells them: state, overdue steps and the history of transitions.
notice_views = Table(
    "notice_views", metadata,
    Column("notice_id", String(64), primary_key=True),
    Column("unit_id", String(100), nullable=False, index=True),
    Column("year", Integer, nullable=False, index=True),
    Column("rule", String(60), nullable=False),
    Column("subject", String(200), nullable=False),
    Column("severity", String(20), nullable=False),
    Column("status", String(20), nullable=False),
    Column("issued_at", DateTime(timezone=True), nullable=False),
    Column("verified_at", DateTime(timezone=True), nullable=True),
    Column("evidence", JSON, nullable=False),
    Column("linked_notice_id", String(64), nullable=True),
    Column("overdue", JSON, nullable=False),
    Column("history", JSON, nullable=False),
    Column("changes", Integer, nullable=False),
)

outbox = outbox_table(metadata)
processed_events = processed_table(metadata)
revoked_tokens = revoked_table(metadata)

# The tables a replay of the topics fills (rebuild empties and refills exactly these).
READ_MODEL = (channel_days, channel_years, surveys, survey_strata, survey_cells, targets, target_values,
              late_after_final, complaint_weeks, feedback_months, target_points, target_titles, notice_views)
