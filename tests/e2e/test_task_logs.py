"""Task logs as a user reads them in the Airflow UI (the REST API the UI calls), on the running
platform: a running task's log is served without an error, and the traffic simulator's
progress lines are INFO records, not ERROR ones (a task's stderr is logged at ERROR)."""

from __future__ import annotations

from globalmart.streaming.control import AirflowApi, poll_until

DAG_ID, TASK_ID = "traffic_simulator", "publish_traffic"
PROGRESS = "[generate]"


def log_messages(api: AirflowApi, run_id: str, try_number: int = 1) -> list[dict]:
    """The task log's structured records as the UI gets them, the source details group included."""
    response = api.client.get(f"/api/v2/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/{TASK_ID}/logs/{try_number}",
                              params={"full_content": "true"}, headers={"Accept": "application/json"})
    response.raise_for_status()
    return response.json()["content"]


def source_details(messages: list[dict]) -> list[str]:
    """The lines of the log's "Log message source details" group: where the UI read the log from."""
    events = [str(message.get("event", "")) for message in messages]
    start = events.index("::group::Log message source details")
    return events[start + 1:events.index("::endgroup::", start)]


def test_a_running_task_log_is_served_and_progress_is_info(platform):
    with AirflowApi(platform) as api:
        was_paused = api._json("GET", f"/api/v2/dags/{DAG_ID}")["is_paused"]
        api._json("PATCH", f"/api/v2/dags/{DAG_ID}", json={"is_paused": False})
        try:
            run_id = api._json("POST", f"/api/v2/dags/{DAG_ID}/dagRuns", json={
                "logical_date": None,
                "conf": {"mode": "realtime", "rate": 20, "minutes": 0.75, "seed": 17},
            })["dag_run_id"]

            def task_state() -> str | None:
                return api._json("GET", f"/api/v2/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/{TASK_ID}")["state"]

            poll_until("publish_traffic running", lambda: task_state() == "running", 240)
            # read while it runs: the UI then asks the log server at the host the task recorded
            running_log = poll_until(
                "a progress line in the running task's log",
                lambda: (messages := log_messages(api, run_id)) and any(
                    PROGRESS in str(m.get("event")) for m in messages) and messages, 60)
            assert task_state() == "running", "the task ended before its running log was read"
            sources = source_details(running_log)
            assert not [line for line in sources if "Could not read served logs" in line], sources
            served = f"http://{platform.airflow.host}:{platform.airflow.log_server_port}/log/"
            assert any(line.startswith(served) for line in sources), sources

            poll_until("the run to end", lambda: api._json(
                "GET", f"/api/v2/dags/{DAG_ID}/dagRuns/{run_id}")["state"] in ("success", "failed"), 240, 2)
            assert api._json("GET", f"/api/v2/dags/{DAG_ID}/dagRuns/{run_id}")["state"] == "success"
        finally:
            api._json("PATCH", f"/api/v2/dags/{DAG_ID}", json={"is_paused": was_paused})

        final_log = log_messages(api, run_id)
        progress = [m for m in final_log if PROGRESS in str(m.get("event"))]
        assert len(progress) >= 3, [m.get("event") for m in final_log]  # 45 s at one line each 10 s
        assert {m.get("level") for m in progress} == {"info"}, progress
        errors = [m for m in final_log if m.get("level") in ("error", "critical")]
        assert not errors, errors
