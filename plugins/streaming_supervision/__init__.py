"""Supervision of the streaming apps: the hook, trigger, sensor and operator of the streaming_pipeline DAG."""
