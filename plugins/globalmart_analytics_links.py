"""Links from the Airflow UI's navigation to the dashboards and the read API's docs, so that a
user who lives in Airflow never has to remember another address. Airflow 3 "external views"
without a ``url_route`` are plain links: the pages open as themselves, with their own login."""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

from globalmart.settings import Settings, load_settings

CATEGORY = "GlobalMart analytics"


def analytics_links(settings: Settings) -> list[dict]:
    return [
        {"name": "Dashboards", "href": settings.dashboards.url, "category": CATEGORY, "destination": "nav"},
        {"name": "Read API docs", "href": f"{settings.api.url}/docs", "category": CATEGORY, "destination": "nav"},
    ]


class GlobalMartAnalyticsLinks(AirflowPlugin):
    name = "globalmart_analytics_links"
    external_views = analytics_links(load_settings())
