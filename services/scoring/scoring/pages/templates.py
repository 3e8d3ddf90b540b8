"""The pages' Jinja2 templates, kept in the package as strings so a built wheel carries them."""
# ruff: noqa: E501 - HTML lines of the templates read better unbroken

from __future__ import annotations

from typing import Any

from jinja2 import DictLoader, Environment, StrictUndefined, select_autoescape
from markupsafe import Markup

STYLE = """
:root{--fg:#1a1a1a;--muted:#555;--line:#ccc;--accent:#0b5394;--bad:#a4000f;--ok:#1b6b2f;--bg:#fff}
*{box-sizing:border-box}body{margin:0;font:16px/1.5 system-ui,"PingFang SC","Noto Sans CJK SC","Microsoft YaHei",
sans-serif;color:var(--fg);background:var(--bg)}
a{color:var(--accent)}a:focus,button:focus,input:focus,select:focus{outline:3px solid #f0a400;outline-offset:2px}
.skip{position:absolute;left:-999px}.skip:focus{left:8px;top:8px;background:#fff;padding:4px;z-index:9}
header{display:flex;flex-wrap:wrap;gap:8px 16px;align-items:center;padding:8px 16px;border-bottom:2px solid var(--accent)}
header .brand{font-weight:700;margin-right:auto}header nav a{margin-right:12px}
main{padding:12px 16px;max-width:1100px;margin:0 auto}
table{border-collapse:collapse;width:100%;margin:8px 0 16px}th,td{border-bottom:1px solid var(--line);
padding:4px 6px;text-align:left;vertical-align:top}th{background:#f2f4f7}td.num,th.num{text-align:right;
font-variant-numeric:tabular-nums}.scroll{overflow-x:auto}
.grade-excellent{color:var(--ok);font-weight:600}.grade-unsatisfactory{color:var(--bad);font-weight:600}
.overdue{color:var(--bad);font-weight:700}.chart{width:100%;height:auto;max-width:640px;display:block}
.spark{width:120px;height:28px}.legend{list-style:none;padding:0;display:flex;flex-wrap:wrap;gap:12px}
.swatch{display:inline-block;width:12px;height:12px;margin-right:4px;vertical-align:middle}
.note{color:var(--muted)}table.notices{min-width:720px}table.notices ul{margin:0;padding-left:1.1em}#live-status{max-width:1100px;margin:0 auto;padding:0 16px 12px}.card{border:1px solid var(--line);border-radius:6px;padding:8px 12px;margin:12px 0}
form.inline{display:flex;flex-wrap:wrap;gap:8px;align-items:end}label{display:block;font-weight:600}
input,select,button{font:inherit;padding:6px 8px}button{background:var(--accent);color:#fff;border:0;border-radius:4px}
.lang a[aria-current]{font-weight:700;text-decoration:none;color:var(--fg)}
@media (max-width:640px){header nav{width:100%}td,th{font-size:14px;padding:3px}.hide-narrow{display:none}}
@media print{header nav,.lang,.noprint,form{display:none}body{font-size:11pt}main{max-width:none}
a{color:inherit;text-decoration:none}section{break-inside:avoid}.chart{max-width:100%}}
"""

BASE = """<!doctype html>
<html lang="{{ 'zh-CN' if lang == 'zh' else 'en' }}">
<head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{ title }} · {{ city_name }}</title><link rel="icon" href="{{ favicon }}"><style>{{ style }}</style></head>
<body>
<a class="skip" href="#content">{{ t('skip') }}</a>
<header>
  <span class="brand">{{ city_name }} · {{ title }}</span>
  <nav aria-label="{{ t('main_nav') }}">{% for href, label in nav %}<a href="{{ href }}">{{ label }}</a>{% endfor %}</nav>
  <span class="lang" role="group" aria-label="{{ t('language') }}">
    <a href="?{{ query('zh') }}" lang="zh-CN" {% if lang == 'zh' %}aria-current="true"{% endif %}>中文</a> |
    <a href="?{{ query('en') }}" lang="en" {% if lang == 'en' %}aria-current="true"{% endif %}>English</a>
  </span>
</header>
<main id="content" tabindex="-1">{% block main %}{% endblock %}</main>
{% if live %}<p class="note noprint" id="live-status" aria-live="polite">{{ t('updated_live') }}</p>
<script>
(function(){var stamp={{ stamp|tojson }};var busy=false;
async function poll(){if(busy)return;busy=true;try{
 var r=await fetch({{ live|tojson }},{credentials:"same-origin",cache:"no-store"});
 if(r.ok){var s=(await r.json()).stamp;if(s!==stamp){var page=await fetch(location.href,{credentials:"same-origin",
 cache:"no-store"});if(page.ok){var doc=new DOMParser().parseFromString(await page.text(),"text/html");
 var next=doc.getElementById("content");if(next){var main=document.getElementById("content");
 var open=Array.prototype.map.call(main.querySelectorAll("details[open][id]"),function(d){return d.id;});
 main.innerHTML=next.innerHTML;open.forEach(function(id){var d=document.getElementById(id);if(d){d.open=true;}});
 stamp=s;}}}}}catch(e){}finally{busy=false;}}
setInterval(poll,{{ poll_ms }});})();
</script>{% endif %}
</body></html>"""

SIGN_IN = """{% extends "base" %}{% block main %}
<h1>{{ t('sign_in') }}</h1>
{% if error %}<p class="overdue" role="alert">{{ error }}</p>{% endif %}
<form method="post" action="/dashboard/sign-in" class="card">
  <label for="token">{{ t('token') }}</label>
  <p class="note" id="token-help">{{ t('token_help') }}</p>
  <input id="token" name="token" type="password" autocomplete="off" required aria-describedby="token-help"
         style="width:100%">
  <p><button type="submit">{{ t('sign_in') }}</button></p>
</form>{% endblock %}"""

RANKING_TABLE = """{% macro ranking_table(group_id, rows, link) %}
<div class="scroll"><table class="ranking" data-group="{{ group_id }}">
<caption>{{ group(group_id) }}</caption>
<thead><tr><th class="num" scope="col">{{ t('rank') }}</th><th scope="col">{{ t('unit') }}</th>
<th class="num" scope="col">{{ t('total') }}</th>
{% for c in components %}<th class="num hide-narrow" scope="col">{{ t(c ~ '_c') }}</th>{% endfor %}
<th scope="col">{{ t('grade') }}</th></tr></thead><tbody>
{% for r in rows %}<tr data-unit="{{ r.unit_id }}" data-rank="{{ r.rank }}">
<td class="num">{{ r.rank }}</td>
<td>{% if link and (can_open is none or r.unit_id in can_open) %}<a href="{{ link }}{{ r.unit_id }}{{ year_q }}">{{ unit(r.unit_id) }}</a>{% else %}{{ unit(r.unit_id) }}{% endif %}</td>
<td class="num">{{ num(r.total, 3) }}</td>
{% for c in components %}<td class="num hide-narrow">{{ num(r.components[c]|float, 3) }}</td>{% endfor %}
<td class="grade-{{ r.grade }}">{{ t(r.grade) }}</td></tr>{% endfor %}
</tbody></table></div>{% endmacro %}"""

NOTICE_TABLE = """{% macro notice_table(items, show_unit=True, register=False) %}
{% if items %}<div class="scroll"><table class="notices">
<thead><tr>{% if show_unit %}<th scope="col">{{ t('unit') }}</th>{% endif %}<th scope="col">{{ t('rule') }}</th>
<th scope="col">{{ t('subject') }}</th><th scope="col">{{ t('status') }}</th><th scope="col">{{ t('issued_at') }}</th>
<th scope="col">{{ t('overdue') }}</th><th scope="col" class="hide-narrow">{{ t('evidence') }}</th>
{% if register %}<th scope="col">{{ t('plan_actions') }}</th><th scope="col">{{ t('commitment') }}</th><th scope="col">{{ t('outcome') }}</th><th scope="col">{{ t('history') }}</th>{% endif %}</tr></thead><tbody>
{% for n in items %}<tr data-notice="{{ n.notice_id }}">
{% if show_unit %}<td>{{ unit(n.unit_id) }}</td>{% endif %}
<td>{{ t(n.rule) }}{% if n.severity == 'escalated' %} ({{ t('escalated') }}){% endif %}</td>
<td>{{ subject(n.subject) }}</td><td>{{ t(n.status) }}{% if n.next_step and not register %}<br><span class="note">{{ t('next_step') }}: {{ t(n.next_step) }}{% if n.deadline %} ({{ t('deadline') }} {{ d(n.deadline) }}){% endif %}</span>{% endif %}</td><td>{{ d(n.issued_at) }}{% if n.observed_on and n.observed_on != n.issued_on %}<br><span class="note">{{ t('observed_on') }} {{ d(n.observed_on) }}</span>{% endif %}</td>
<td>{% for o in n.overdue %}<span class="overdue">{{ t('overdue') }}: {{ t(o.step) }} ({{ t('deadline') }} {{ d(o.deadline) }})</span><br>{% else %}—{% endfor %}</td>
<td class="hide-narrow">{% for k, v in n.evidence_words.items() %}<span class="fact words" data-key="{{ k }}">{{ said(k, v) }}</span><br>{% endfor %}{% for k, v in n.evidence.items() %}<span class="fact" data-key="{{ k }}">{{ fact(k, v) }}</span>{% if not loop.last %}<br>{% endif %}{% endfor %}</td>
{% if register %}<td class="plan">{% if n.actions %}<ul>{% for a in n.actions %}<li>{{ a }}</li>{% endfor %}</ul>{% if n.planned_at %}<span class="note">{{ d(n.planned_at) }}</span>{% endif %}{% elif not n.plan_known %}<span class="note">{{ t('old_events') }}</span>{% else %}—{% endif %}</td>
<td class="commitment">{% if n.commitment %}{{ n.commitment.metric }}: {{ num(n.commitment.target, 2) if n.commitment.target is number else n.commitment.target }}<br><span class="note">{{ t('due') }} {{ d(n.commitment.due) }}</span>{% else %}—{% endif %}</td>
<td class="outcome" data-outcome="{{ n.outcome }}">{{ t(n.outcome) }}{% if n.verified_at %}<br><span class="note">{{ t('verified_on') }} {{ d(n.verified_at) }}</span>{% endif %}{% for k, v in n.figures.items() %}<br><span class="note fact" data-key="{{ k }}">{{ fact(k, v) }}</span>{% endfor %}{% if n.deadline %}<br><span class="note">{{ t('next_step') }}: {{ t(n.next_step) }}, {{ t('deadline') }} {{ d(n.deadline) }}</span>{% endif %}</td>
<td>{% for h in n.history %}{{ t(h.status) }} {{ d(h.at) }}<br>{% endfor %}</td>{% endif %}
</tr>{% endfor %}</tbody></table></div>
{% else %}<p class="note">{{ t('none') }}</p>{% endif %}{% endmacro %}"""

DASHBOARD = """{% extends "base" %}{% from "ranking" import ranking_table with context %}{% from "notice" import notice_table with context %}
{% block main %}
<h1>{{ t('ranking') }} {{ year }} <span class="note">({{ t(year_state) }})</span></h1>
{% if has_data %}{% for group_id, rows in groups.items() %}{{ ranking_table(group_id, rows, '/dashboard/units/') }}{% endfor %}
{% else %}<p class="note" data-no-data="{{ year }}">{{ no_data }}</p>{% endif %}
<h2>{{ notices_title }}</h2>
{{ notice_table(notices) }}
{% endblock %}"""

NOTICES = """{% extends "base" %}{% from "notice" import notice_table with context %}{% block main %}
<h1>{{ notices_title }}</h1>{{ notice_table(notices) }}{% endblock %}"""

UNIT = """{% extends "base" %}{% from "notice" import notice_table with context %}{% block main %}
{% set c = page.card %}
<h1>{{ unit(c.unit_id) }} · {{ year }}</h1>
<section aria-labelledby="h-card"><h2 id="h-card">{{ t('scorecard') }}</h2>
{% if not has_data %}<p class="note" data-no-data="{{ year }}">{{ no_data }}</p>{% else %}
<p><strong>{{ t('total') }} {{ num(c.total, 3) }}</strong> · {{ t('rank') }} {{ c.rank }} ({{ group(c.group) }})
 · <span class="grade-{{ c.grade }}">{{ t(c.grade) }}</span>{% if c.final %} · {{ t('final') }}{% endif %}</p>
<div class="scroll"><table class="components"><thead><tr>{% for k in components %}<th class="num" scope="col">{{ t(k ~ '_c') }}</th>{% endfor %}</tr></thead>
<tbody><tr>{% for k in components %}<td class="num" data-component="{{ k }}">{{ num(c.components[k]|float, 3) }}</td>{% endfor %}</tr></tbody></table></div>
<div class="scroll"><table class="channels"><caption>{{ t('public_c') }}: S = {{ num(c.public.S, 3) if c.public.S is not none else '—' }}
{% if c.public.interval %}, {{ t('interval') }} [{{ num(c.public.interval[0], 3) }}, {{ num(c.public.interval[1], 3) }}]{% endif %}</caption>
<thead><tr><th scope="col">{{ t('channel') }}</th><th class="num" scope="col">{{ t('n') }}</th><th class="num" scope="col">{{ t('mean') }}</th>
<th class="num" scope="col">{{ t('shrunk') }}</th><th class="num" scope="col">{{ t('weight') }}</th></tr></thead><tbody>
{% for name, ch in c.public.channels.items() %}<tr><th scope="row">{{ t(name) }}</th><td class="num">{{ num(ch.n, 0) }}</td>
<td class="num">{{ num(ch.mean, 3) }}</td><td class="num">{{ num(ch.shrunk, 3) }}</td><td class="num">{{ num(ch.weight, 2) }}</td></tr>{% endfor %}
</tbody></table></div>
{% if c.warnings %}<h3>{{ t('warnings') }}</h3><ul>{% for w in c.warnings %}<li>{{ w }}</li>{% endfor %}</ul>{% endif %}
{% endif %}</section>
<section aria-labelledby="h-weekly"><h2 id="h-weekly">{{ t('weekly_satisfaction') }}</h2>
{% if page.weeks %}{{ charts.weekly }}{{ charts.weekly_legend }}
<details id="weekly-figures"><summary>{{ t('weekly_table') }}</summary><div class="scroll"><table><thead><tr><th scope="col">{{ t('week') }}</th>
{% for ch in page.satisfaction %}<th class="num" scope="col">{{ t(ch) }}</th>{% endfor %}</tr></thead><tbody>
{% for w in page.weeks %}{% set i = loop.index0 %}<tr><td>{{ d(w) }}</td>{% for ch, vals in page.satisfaction.items() %}<td class="num">{{ pct(vals[i]) }}</td>{% endfor %}</tr>{% endfor %}
</tbody></table></div></details>{% else %}<p class="note">{{ t('none') }}</p>{% endif %}
</section>
<section aria-labelledby="h-cat"><h2 id="h-cat">{{ t('top_categories') }}</h2>
{% if page.categories %}<div class="scroll"><table><thead><tr><th scope="col">{{ t('category') }}</th><th class="num" scope="col">{{ t('negative') }}</th><th scope="col">{{ t('trend') }}</th></tr></thead><tbody>
{% for cat in page.categories %}<tr><td>{{ category(cat.category_id) }}</td><td class="num">{{ num(cat.negative) }}</td><td>{{ charts.sparks[cat.category_id] }}</td></tr>{% endfor %}
</tbody></table></div>{% else %}<p class="note">{{ t('none') }}</p>{% endif %}
</section>
<section aria-labelledby="h-targets"><h2 id="h-targets">{{ t('targets') }}</h2>
{% for tg in page.targets %}<div class="card target" data-target="{{ tg.target_id }}">
<h3>{{ tg.title or tg.code }} <span class="note">({{ tg.code }})</span></h3>
<p>{{ t('baseline') }} {{ num(tg.baseline, 2) }} → {{ t('target') }} {{ num(tg.target, 2) }}
{% if tg.points %} · {{ t('latest') }} {{ num(tg.points[-1].value, 2) }} ({{ d(tg.points[-1].date) }}) · {{ t('status') }}: {{ t(tg.points[-1].status) }}
{% if tg.points[-1].projection is not none %} · {{ t('projection') }} {{ num(tg.points[-1].projection, 2) }}
[{{ num(tg.points[-1].low, 2) }}, {{ num(tg.points[-1].high, 2) }}]{% endif %}{% else %} · {{ t('no_data') }}{% endif %}</p>
{{ charts.targets[tg.target_id] }}</div>{% else %}<p class="note">{{ t('none') }}</p>{% endfor %}
</section>
<section aria-labelledby="h-notices"><h2 id="h-notices">{{ t('notices') }}</h2>
{{ notice_table(page.notices, show_unit=False) }}</section>
{% endblock %}"""

PUBLIC = """{% extends "base" %}{% from "ranking" import ranking_table with context %}{% from "notice" import notice_table with context %}{% from "year_form" import year_form with context %}
{% block main %}
<h1>{{ t('public') }} {{ year }}</h1>
{% if years %}{{ year_form(years) }}{% endif %}
{% if results %}<p>{{ t('final') if results.final else t('draft') }}{% if report_open %} · <a href="/v1/reports/annual/{{ year }}">{{ t('report_link') }}</a>{% endif %}</p>
{% for group_id, rows in groups.items() %}{{ ranking_table(group_id, rows, '/public/units/') }}{% endfor %}
{% else %}<p class="note">{{ t('not_published') }}</p>{% endif %}
<h2>{{ t('notice_register') }}</h2>
{{ notice_table(notices, register=True) }}
<h2 id="tracking">{{ t('tracking') }}</h2>
<form method="get" action="/public/track" class="inline card">
 <div><label for="code">{{ t('tracking_code') }}</label><input id="code" name="code" required maxlength="64"
  pattern="[A-Za-z0-9-]{4,64}" autocomplete="off"></div><button type="submit">{{ t('look_up') }}</button></form>
{% endblock %}"""

REPORT = """{% extends "base" %}{% block main %}
<h1>{{ t('report') }} {{ r.year }}</h1>
<p class="note">{{ t(r.status) }} · {{ d(r.generated_on) }} · <a class="noprint" href="javascript:window.print()">{{ t('print') }}</a></p>
<section aria-labelledby="h-vol"><h2 id="h-vol">{{ t('volume') }}</h2>
{{ charts.volume }}{{ charts.volume_legend }}
<div class="scroll"><table class="volume"><thead><tr><th scope="col">{{ t('channel') }}</th>
{% for m in r.volume.months %}<th class="num" scope="col">{{ month(m) }}</th>{% endfor %}<th class="num" scope="col">{{ t('all') }}</th></tr></thead><tbody>
{% for ch, counts in r.volume.channels.items() %}<tr data-channel="{{ ch }}"><th scope="row">{{ t(ch) }}</th>{% for n in counts %}<td class="num">{{ num(n) }}</td>{% endfor %}
<td class="num" data-total="{{ r.volume.by_channel[ch] }}">{{ num(r.volume.by_channel[ch]) }}</td></tr>{% endfor %}
<tr class="all"><th scope="row">{{ t('all') }}</th>{% for n in r.volume.by_month %}<td class="num">{{ num(n) }}</td>{% endfor %}<td class="num" data-total="{{ r.volume.total }}">{{ num(r.volume.total) }}</td></tr>
</tbody></table></div></section>
<section aria-labelledby="h-sat"><h2 id="h-sat">{{ t('sat_by_unit') }}</h2>
<div class="scroll"><table class="satisfaction"><thead><tr><th scope="col">{{ t('unit') }}</th><th scope="col">{{ t('group') }}</th>
<th class="num" scope="col">{{ t('satisfaction') }}</th><th class="num" scope="col">{{ t('interval') }}</th>
<th class="num" scope="col">{{ t('sat_last') }} ({{ r.year - 1 }}, {{ t(r.previous_status) if r.previous_status else '—' }})</th><th class="num" scope="col">{{ t('sat_change') }}</th><th class="num" scope="col">{{ t('rank_total') }}</th></tr></thead><tbody>
{% for s in r.satisfaction %}<tr data-unit="{{ s.unit_id }}" data-s="{{ s.S if s.S is not none else '' }}" data-previous-s="{{ s.previous_S if s.previous_S is not none else '' }}"><td>{{ unit(s.unit_id) }}</td><td>{{ group(s.group) }}</td>
<td class="num">{{ pct(s.S) if s.rated else '—' }}</td><td class="num">{% if s.interval %}{{ pct(s.interval[0]) }}–{{ pct(s.interval[1]) }}{% else %}—{% endif %}</td>
<td class="num">{{ pct(s.previous_S) if s.previous_S is not none else '—' }}</td><td class="num">{{ pp(s.change) }}</td><td class="num">{{ s.rank }}</td></tr>{% endfor %}
</tbody></table></div></section>
<section aria-labelledby="h-cat"><h2 id="h-cat">{{ t('category_shares') }}</h2>
{{ charts.shares }}
<div class="scroll"><table class="categories"><thead><tr><th scope="col">{{ t('category') }}</th><th class="num" scope="col">{{ t('negative') }}</th>
<th class="num" scope="col">{{ t('share_this') }}</th><th class="num" scope="col">{{ t('share_last') }}</th><th class="num" scope="col">{{ t('change') }}</th>
<th class="num" scope="col">{{ t('p_value') }}</th><th class="num" scope="col">{{ t('q_value') }}</th></tr></thead><tbody>
{% for c in r.categories %}<tr data-category="{{ c.category_id }}" data-negative="{{ c.negative }}"><td>{{ category(c.category_id) }}</td><td class="num">{{ num(c.negative) }}</td>
<td class="num">{{ pct(c.share) }}</td><td class="num">{{ pct(c.previous_share) }}</td><td class="num">{{ pp(c.change) }}</td>
<td class="num" data-p="{{ c.p_value if c.p_value is not none else '' }}">{{ pval(c.p_value) }}</td><td class="num" data-q="{{ c.q_value if c.q_value is not none else '' }}">{{ pval(c.q_value) }}</td></tr>{% endfor %}
</tbody></table></div></section>
<section aria-labelledby="h-not"><h2 id="h-not">{{ t('notices_year') }}</h2>
<p>{{ t('count') }}: <span data-issued="{{ r.notices.issued }}">{{ num(r.notices.issued) }}</span> ·
{% for st, n in r.notices.by_status.items() %}{{ t(st) }} {{ num(n) }}{% if not loop.last %}, {% endif %}{% endfor %}</p>
{% if r.notices['items'] %}<div class="scroll"><table><thead><tr><th scope="col">{{ t('unit') }}</th><th scope="col">{{ t('rule') }}</th><th scope="col">{{ t('subject') }}</th>
<th scope="col">{{ t('status') }}</th><th class="num" scope="col">{{ t('before') }}</th><th class="num" scope="col">{{ t('after') }}</th></tr></thead><tbody>
{% for n in r.notices['items'] %}<tr><td>{{ unit(n.unit_id) }}</td><td>{{ t(n.rule) }}</td><td>{{ subject(n.subject) }}</td><td>{{ t(n.status) }}</td>
<td class="num">{{ num(n.effect.before, 2) if n.effect else '—' }}</td><td class="num">{{ num(n.effect.after, 2) if n.effect and n.effect.after is not none else '—' }}</td></tr>{% endfor %}
</tbody></table></div>{% endif %}</section>
<section aria-labelledby="h-pri"><h2 id="h-pri">{{ t('priorities') }}</h2>
{% if r.priorities %}<ol>{% for c in r.priorities %}<li data-priority="{{ c.category_id }}">{{ category(c.category_id) }}: {{ pct(c.previous_share) }} → {{ pct(c.share) }} ({{ t('q_value') }}: {{ pval(c.q_value) }})</li>{% endfor %}</ol>
{% else %}<p>{{ t('priorities_none') }}</p>{% endif %}
<p class="note">{{ t('test_used') }}: {{ r.test }}</p></section>
{% endblock %}"""

PUBLIC_UNIT = """{% extends "base" %}{% from "notice" import notice_table with context %}{% from "year_form" import year_form with context %}{% block main %}
<h1>{{ unit(page.unit_id) }}</h1>
{% if page.years %}{{ year_form(page.years) }}{% endif %}
{% set c = page.card %}
<section aria-labelledby="h-card"><h2 id="h-card">{{ t('scorecard') }} {{ year }}</h2>
{% if c %}<p><strong>{{ t('total') }} {{ num(c.total, 3) }}</strong> · {{ t('rank') }} {{ c.rank }} ({{ group(c.group) }})
 · <span class="grade-{{ c.grade }}">{{ t(c.grade) }}</span> · {{ t('final') if c.final else t('draft') }}</p>
<div class="scroll"><table class="components"><thead><tr>{% for k in components %}<th class="num" scope="col">{{ t(k ~ '_c') }}</th>{% endfor %}</tr></thead>
<tbody><tr>{% for k in components %}<td class="num" data-component="{{ k }}">{{ num(c.components[k]|float, 3) }}</td>{% endfor %}</tr></tbody></table></div>
<p>{{ t('satisfaction') }}: <span data-s="{{ c.public.S if c.rated else '' }}">{{ pct(c.public.S) if c.rated else '—' }}</span>{% if c.rated and c.public.interval %} ({{ t('interval') }} {{ pct(c.public.interval[0]) }}–{{ pct(c.public.interval[1]) }}){% endif %}</p>
{% else %}<p class="note">{{ t('not_published') }}</p>{% endif %}</section>
<section aria-labelledby="h-years"><h2 id="h-years">{{ t('final_cards') }}</h2>
{% if page.history %}{% if trend %}{{ trend }}{% endif %}
<div class="scroll"><table class="years"><thead><tr><th scope="col">{{ t('year') }}</th><th class="num" scope="col">{{ t('satisfaction') }}</th>
<th class="num" scope="col">{{ t('total') }}</th><th class="num" scope="col">{{ t('rank') }}</th><th scope="col">{{ t('grade') }}</th></tr></thead><tbody>
{% for h in page.history %}<tr data-year="{{ h.year }}"><th scope="row">{{ h.year }}{% if not h.final %} ({{ t('draft') }}){% endif %}</th><td class="num">{{ pct(h.S) if h.S is not none else '—' }}</td>
<td class="num">{{ num(h.total, 3) }}</td><td class="num">{{ h.rank }}</td><td class="grade-{{ h.grade }}">{{ t(h.grade) }}</td></tr>{% endfor %}
</tbody></table></div>{% else %}<p class="note">{{ t('no_final') }}</p>{% endif %}</section>
<section aria-labelledby="h-notices"><h2 id="h-notices">{{ t('notice_register') }}</h2>
{{ notice_table(page.notices, show_unit=False, register=True) }}</section>
{% endblock %}"""

MESSAGE = """{% extends "base" %}{% block main %}<h1>{{ heading }}</h1><p role="alert" data-status="{{ status_code }}">{{ message }}</p>
{% if link %}<p><a href="{{ link[0] }}">{{ link[1] }}</a></p>{% endif %}{% endblock %}"""

# The year selector of the public pages. A year asked for that is not published is listed too, and
# selected, so the selector never names another year than the heading.
YEAR_FORM = """{% macro year_form(published) %}{% set listed = published if year in published else (published + [year])|sort(reverse=true) %}
<form method="get" class="inline noprint"><label for="year">{{ t('year') }}</label>
<select id="year" name="year">{% for y in listed %}<option value="{{ y }}" {% if y == year %}selected{% endif %}>{{ y }}{% if y not in published %} {{ t('not_published_year') }}{% endif %}</option>{% endfor %}</select>
<button type="submit">{{ t('show') }}</button></form>{% endmacro %}"""

TEMPLATES = {"base": BASE, "year_form": YEAR_FORM, "sign_in": SIGN_IN, "ranking": RANKING_TABLE, "notice": NOTICE_TABLE,
             "dashboard": DASHBOARD, "notices": NOTICES, "unit": UNIT, "public": PUBLIC, "report": REPORT,
             "public_unit": PUBLIC_UNIT, "message": MESSAGE}

environment = Environment(loader=DictLoader(TEMPLATES),
                          autoescape=select_autoescape(default=True, default_for_string=True),
                          undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)


# An icon drawn inline: browsers then never ask for /favicon.ico (a 404 in the console on every first load).
FAVICON = ("data:image/svg+xml,%3Csvg xmlns='http://www.w3.org/2000/svg' viewBox='0 0 16 16'%3E"
           "%3Crect width='16' height='16' rx='3' fill='%230b5394'/%3E"
           "%3Cpath d='M4 12V8M8 12V4M12 12V6' stroke='%23fff' stroke-width='2'/%3E%3C/svg%3E")


def render(name: str, **context: Any) -> str:
    # The stylesheet is ours, not input: marked safe, or autoescaping turns its quotes into &#34; and
    # cuts the font list. Everything else stays autoescaped.
    return environment.get_template(name).render(style=Markup(STYLE), favicon=FAVICON, **context)
