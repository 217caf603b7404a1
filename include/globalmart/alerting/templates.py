"""Jinja2 templates of the alert emails: per alert family a subject, an HTML body and a text body.

Kept as Python strings so that they ship with the package like any module. The facts shown
are computed by :mod:`globalmart.alerting.rendering`; the templates lay them out. Styles are
inline because many mail clients drop ``<style>`` blocks.
"""

BASE_HTML = """\
<!DOCTYPE html>
<html lang="en">
<head><meta charset="utf-8"><title>{{ subject }}</title></head>
<body style="margin:0;padding:24px;background:#f4f5f7;font-family:Arial,Helvetica,sans-serif;color:#1f2933">
<table role="presentation" style="width:100%;max-width:{% block width %}640{% endblock %}px;margin:0 auto;background:#ffffff;border-collapse:collapse">
<tr><td style="padding:16px 24px;background:{{ colour }};color:#ffffff;font-size:18px;font-weight:bold">
{% block headline %}{% endblock %}
</td></tr>
<tr><td style="padding:20px 24px;font-size:14px;line-height:1.5">
{% block body %}{% endblock %}
</td></tr>
<tr><td style="padding:12px 24px;border-top:1px solid #e4e7eb;font-size:12px;color:#6b7280">
{% block footer %}{% endblock %}
Sent by the GlobalMart alerts DAG to {{ recipients | join(", ") }}.
</td></tr>
</table>
</body>
</html>
"""

FACTS_MACRO_HTML = """\
{% macro facts_table(facts) %}
<table role="presentation" style="border-collapse:collapse;margin:12px 0;width:100%">
{% for label, value in facts %}
<tr><th style="text-align:left;padding:6px 12px 6px 0;color:#52606d;font-weight:normal;white-space:nowrap;vertical-align:top">{{ label }}</th>
<td style="padding:6px 0;font-weight:bold">{{ value }}</td></tr>
{% endfor %}
</table>
{% endmacro %}
"""

SINGLE_HTML = """\
{% extends "base.html" %}
{% from "facts.html" import facts_table %}
{% block headline %}{{ headline }}{% endblock %}
{% block body %}
<p style="margin:0 0 8px">{{ summary }}</p>
{{ facts_table(facts) }}
<p style="margin:12px 0 0"><strong>What to do:</strong> {{ advice }}</p>
{% if decision_url %}
<p style="margin:16px 0 0"><a href="{{ decision_url }}" style="display:inline-block;padding:10px 16px;background:#175cd3;color:#ffffff;text-decoration:none;border-radius:4px;font-weight:bold">{{ decision_text }} in Airflow</a></p>
{% endif %}
{% endblock %}
{% block footer %}Alert {{ alert.alert_id }} from {{ alert.app }}, raised {{ alert.created_at | utc }}, severity {{ alert.severity }}.<br>{% endblock %}
"""

SINGLE_TEXT = """\
{{ headline }}
{{ "=" * (headline | length) }}

{{ summary }}

{% for label, value in facts %}
{{ "%-16s" | format(label ~ ":") }} {{ value }}
{% endfor %}

What to do: {{ advice }}
{% if decision_url %}

{{ decision_text }} in Airflow: {{ decision_url }}
{% endif %}

--
Alert {{ alert.alert_id }} from {{ alert.app }}, raised {{ alert.created_at | utc }}, severity {{ alert.severity }}.
Sent by the GlobalMart alerts DAG to {{ recipients | join(", ") }}.
"""

# what each family's email says around its facts
STOCK = {
    "stock.subject": "{{ prefix }} {{ state_title }} stock: {{ product }} has {{ d.stock }} left (below {{ d.threshold }})",
    "stock.headline": "{{ state_title }} stock: {{ product }}",
    "stock.summary": (
        "{{ product }}{% if d.category %} in {{ d.category }}{% endif %} is down to {{ d.stock }} "
        "unit{{ '' if d.stock == 1 else 's' }}, below the {{ d.state }}-stock threshold of {{ d.threshold }}."
    ),
    "stock.advice": (
        "{% if d.state == 'critical' %}reorder now or pause promotions of this product: it will sell out soon."
        "{% else %}plan a restock of this product.{% endif %}"
    ),
}

ANOMALY = {
    "anomaly.subject": (
        "{{ prefix }} Suspicious activity: {{ rule }} by {{ d.user_id }}, {{ d.amount | money }} (score {{ d.score | score }})"
    ),
    "anomaly.headline": "Suspicious activity: {{ rule }}",
    "anomaly.summary": "{{ d.description }}.",
    "anomaly.advice": (
        "review the transactions of {{ d.user_id }}; hold the orders or contact the customer if they look fraudulent."
    ),
}

ABANDONMENT = {
    "cart_abandonment.subject": (
        "{{ prefix }} Cart abandonment spike: {{ d.abandoned_carts_so_far }} carts abandoned {{ d.hour | hour_range }} "
        "(threshold {{ d.threshold }})"
    ),
    "cart_abandonment.headline": "Cart abandonment spike, {{ d.hour | hour_range }}",
    "cart_abandonment.summary": (
        "{{ d.abandoned_carts_so_far }} carts worth {{ d.abandoned_value_so_far | money }} were abandoned in the hour "
        "{{ d.hour | hour_range }}, more than the threshold of {{ d.threshold }} an hour."
    ),
    "cart_abandonment.advice": (
        "check checkout, payment and delivery-cost pages for errors or slowness during this hour."
    ),
}

DATA_QUALITY = {
    "data_quality.subject": "{{ prefix }} Data quality: {{ alert.subject }}",
    "data_quality.headline": "Data quality: {{ rule }}",
    "data_quality.summary": "{{ d.description }}",
    "data_quality.advice": "{{ d.advice }}",
}

DIGEST_SUBJECT = "{{ prefix }} Alert digest: {{ alerts_count }} alerts ({{ counts }})"

DIGEST_HTML = """\
{% extends "base.html" %}
{% block width %}960{% endblock %}
{% block headline %}Alert digest: {{ alerts_count }} alerts{% endblock %}
{% block body %}
<p style="margin:0 0 8px">{{ alerts_count }} alerts from {{ first | utc }} to {{ last | utc }} arrived together,
so they come as one email. Grouped by kind, most severe first.</p>
{% for group in groups %}
<h2 style="font-size:16px;margin:20px 0 6px;color:{{ group.colour }}">{{ group.title }} ({{ group.alerts_count }})</h2>
<table style="border-collapse:collapse;width:100%;font-size:13px">
<tr>{% for label in group.columns %}<th style="text-align:left;padding:6px 8px;background:#f4f5f7;border-bottom:1px solid #cbd2d9">{{ label }}</th>{% endfor %}</tr>
{% for row in group.rows %}
<tr>{% for value in row %}<td style="padding:6px 8px;border-bottom:1px solid #e4e7eb;vertical-align:top">{{ value }}</td>{% endfor %}</tr>
{% endfor %}
</table>
{% if group.more %}<p style="margin:6px 0;color:#52606d">and {{ group.more }} more {{ group.title | lower }} alerts.</p>{% endif %}
{% endfor %}
{% if decisions_url %}
<p style="margin:16px 0 0"><a href="{{ decisions_url }}">Decisions these alerts opened, in Airflow's Required Actions</a></p>
{% endif %}
{% endblock %}
"""

DIGEST_TEXT = """\
{% set title = "Alert digest: %d alerts" | format(alerts_count) %}
{{ title }}
{{ "=" * (title | length) }}

{{ alerts_count }} alerts from {{ first | utc }} to {{ last | utc }} arrived together, so they come as one email.
{% for group in groups %}

{{ group.title | upper }} ({{ group.alerts_count }})
{% for row in group.rows %}
- {% for value in row %}{{ group.columns[loop.index0] }}: {{ value }}{{ "; " if not loop.last }}{% endfor %}

{% endfor %}
{% if group.more %}
  and {{ group.more }} more {{ group.title | lower }} alerts.
{% endif %}
{% endfor %}
{% if decisions_url %}

Decisions these alerts opened, in Airflow's Required Actions: {{ decisions_url }}
{% endif %}

--
Sent by the GlobalMart alerts DAG to {{ recipients | join(", ") }}.
"""

TEMPLATES: dict[str, str] = {
    "base.html": BASE_HTML,
    "facts.html": FACTS_MACRO_HTML,
    "single.html": SINGLE_HTML,
    "single.txt": SINGLE_TEXT,
    "digest.subject": DIGEST_SUBJECT,
    "digest.html": DIGEST_HTML,
    "digest.txt": DIGEST_TEXT,
    **STOCK,
    **ANOMALY,
    **ABANDONMENT,
    **DATA_QUALITY,
}
