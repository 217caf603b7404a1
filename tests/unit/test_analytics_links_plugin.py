import importlib.util
from pathlib import Path

from airflow.api_fastapi.core_api.datamodels.plugins import ExternalViewResponse

PLUGIN = Path(__file__).parents[2] / "plugins" / "globalmart_analytics_links.py"


def load_plugin_module():
    spec = importlib.util.spec_from_file_location("globalmart_analytics_links", PLUGIN)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_airflow_navigation_links_to_the_dashboards_and_the_api_docs(settings):
    module = load_plugin_module()
    views = [ExternalViewResponse(**view) for view in module.GlobalMartAnalyticsLinks.external_views]
    assert {view.name: view.href for view in views} == {
        "Dashboards": settings.dashboards.url, "Read API docs": f"{settings.api.url}/docs"}
    assert all(view.destination == "nav" and view.url_route is None for view in views)
