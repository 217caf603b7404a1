"""The daily batch's emails: a gate that blocked publishing, and a run's summary.

A blocked run's email lists every failing expectation (dataset, column, what was expected,
what was found, example rows) and points to the Data Docs page built for that run. A published
run's email says, per day, which gates passed with how many expectations, where their Data Docs
are, and per table what publishing did: a dimension's documents inserted, updated and unchanged
(a re-run reads "unchanged", not 0), a day-keyed table's documents inserted and the day's
previous ones they replaced (or its documents unchanged: a re-run writes nothing), and links to
the dashboards that show the warehouse (``dashboards.url``). Both are sent like every alert email
(:func:`globalmart.alerting.delivery.send`: the provider's SMTP hook, ``alerting.recipients``).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

from jinja2 import Environment, StrictUndefined

from globalmart.alerting.delivery import send
from globalmart.alerting.rendering import RenderedEmail
from globalmart.settings import Settings

GATE_TITLES = {"raw_day": "raw-day", "outputs": "output"}
OUTCOME_TITLES = {"inserted": "inserted", "updated": "updated", "unchanged": "unchanged",
                  "replaced": "day's previous replaced"}
# the dashboard pages that read the warehouse (Streamlit's page paths, dashboards/app.py)
DASHBOARD_PAGES = {"Customers (RFM segments)": "customers", "Products and trends": "products"}

_html = Environment(autoescape=True, undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)
_text = Environment(autoescape=False, undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)
for _environment in (_html, _text):
    _environment.filters["count"] = "{:,}".format

BLOCKED_HTML = """\
<html><body style="font-family: sans-serif">
<h2 style="color: #b42318">Daily batch blocked: the {{ title }} gate failed</h2>
<p>Nothing was published for {{ days }}: the warehouse in MongoDB is unchanged.
Fix the data (or the expectation) and re-run the <code>daily_batch</code> DAG for these dates.</p>
{% for result in results %}
<h3>{{ result.day }}: {{ result.failures | length }} of {{ result.evaluated }} expectations failed</h3>
<ul>
{% for failure in result.failures %}
  <li><code>{{ failure }}</code></li>
{% endfor %}
</ul>
<p>Data Docs: <a href="file://{{ result.docs_index }}">{{ result.docs_index }}</a></p>
{% endfor %}
</body></html>
"""

BLOCKED_TEXT = """\
Daily batch blocked: the {{ title }} gate failed

Nothing was published for {{ days }}: the warehouse in MongoDB is unchanged.
Fix the data (or the expectation) and re-run the daily_batch DAG for these dates.
{% for result in results %}

{{ result.day }}: {{ result.failures | length }} of {{ result.evaluated }} expectations failed
{% for failure in result.failures %}
- {{ failure }}
{% endfor %}
Data Docs: {{ result.docs_index }}
{% endfor %}
"""

PUBLISHED_HTML = """\
<html><body style="font-family: sans-serif">
<h2>Daily batch published {{ days }}</h2>
{% for day, record in published %}
<h3>{{ day }}</h3>
<p>Gates passed:
{% for gate in record.gates %}
  {{ gate_titles.get(gate.gate, gate.gate) }} ({{ gate.evaluated | count }} expectations){{ "," if not loop.last }}
{% else %}
  none recorded
{% endfor %}
{% for docs in record.gates | map(attribute="docs_index") | unique %}
<br>Data Docs: <a href="file://{{ docs }}">{{ docs }}</a>
{% endfor %}
</p>
<table cellpadding="4" style="border-collapse: collapse">
<tr><th align="left">table</th>
{% for title in outcome_titles.values() %}<th align="right">{{ title }}</th>{% endfor %}</tr>
{% for table, changes in record.tables.items() %}
<tr><td>{{ table }}</td>
{% for outcome in outcome_titles %}
<td align="right">{{ changes[outcome] | count if outcome in changes else "–" }}</td>
{% endfor %}
</tr>
{% endfor %}
</table>
<p style="color: #555">Only what changed is written: a dimension's new documents are inserted and
changed ones updated; a day-keyed table's changed day replaces its previous documents; a re-run of
an unchanged day leaves everything unchanged.</p>
{% endfor %}
<p>Dashboards:
{% for title, url in dashboards.items() %}
  <a href="{{ url }}">{{ title }}</a>{{ " ·" if not loop.last }}
{% endfor %}
</p>
</body></html>
"""

PUBLISHED_TEXT = """\
Daily batch published {{ days }}
{% for day, record in published %}

{{ day }}
Gates passed:
{% for gate in record.gates %}
 {{ gate_titles.get(gate.gate, gate.gate) }} ({{ gate.evaluated | count }} expectations){{ "," if not loop.last }}
{% else %}
 none recorded
{% endfor %}

{% for docs in record.gates | map(attribute="docs_index") | unique %}
Data Docs: {{ docs }}
{% endfor %}
{% for table, changes in record.tables.items() %}
- {{ table }}: {{ changes.inserted | count }} inserted
{%- if "replaced" in changes %}
{%- if changes.replaced %}, replacing the day's {{ changes.replaced | count }} previous documents{% endif %}
{%- if changes.get("unchanged") %}, {{ changes.unchanged | count }} unchanged{% endif %}
{%- else %}, {{ changes.updated | count }} updated, {{ changes.unchanged | count }} unchanged{% endif %}

{% endfor %}
{% endfor %}

Dashboards:
{% for title, url in dashboards.items() %}
- {{ title }}: {{ url }}
{% endfor %}
"""

def _days(days: Sequence[str]) -> str:
    days = sorted(days)
    return days[0] if len(days) == 1 else f"{days[0]} to {days[-1]} ({len(days)} days)"


def render_blocked(results: Sequence[dict], settings: Settings) -> RenderedEmail:
    """``results``: the failed gate results (as saved by ``sources.save_gate_result``) of one gate."""
    gate = results[0]["gate"]
    failed = sum(len(result["failures"]) for result in results)
    context = {"title": GATE_TITLES.get(gate, gate), "days": _days([r["day"] for r in results]), "results": results}
    subject = (f"{settings.alerting.subject_prefix} Daily batch blocked: {context['title']} gate failed for "
               f"{context['days']} ({failed} failed expectations)")
    return RenderedEmail(subject=subject, html=_html.from_string(BLOCKED_HTML).render(context),
                         text=_text.from_string(BLOCKED_TEXT).render(context))


def render_published(published: dict[str, dict], settings: Settings) -> RenderedEmail:
    """``published``: what ``globalmart.warehouse.publish.publish`` returns, day → ``tables``
    (table → inserted, updated, unchanged or inserted, replaced) and ``gates`` (gate, evaluated,
    docs_index of each gate passed)."""
    context = {"days": _days(list(published)), "published": sorted(published.items()), "gate_titles": GATE_TITLES,
               "outcome_titles": OUTCOME_TITLES,
               "dashboards": {title: f"{settings.dashboards.url}/{page}" for title, page in DASHBOARD_PAGES.items()}}
    subject = f"{settings.alerting.subject_prefix} Daily batch published {context['days']}"
    return RenderedEmail(subject=subject, html=_html.from_string(PUBLISHED_HTML).render(context),
                         text=_text.from_string(PUBLISHED_TEXT).render(context))


def send_blocked(results: Sequence[dict], settings: Settings) -> RenderedEmail:
    email = render_blocked(results, settings)
    send(email, settings)
    return email


def send_failed_gate(gate: str, days: Sequence[date], settings: Settings) -> tuple[list[dict], RenderedEmail | None]:
    """Email the failures of ``gate`` among ``days``, as the gate saved them (the DAG's gate
    operator does this: a spark-submit cannot reach Airflow's SMTP connection). Returns the
    failed results and the email, None when no day failed."""
    from globalmart.warehouse import sources  # imports PySpark: kept out of the summary email's task

    failed = sources.failed_gate_results(settings, gate, days)
    return failed, send_blocked(failed, settings) if failed else None


def send_published(published: dict[str, dict], settings: Settings) -> RenderedEmail:
    email = render_published(published, settings)
    send(email, settings)
    return email
