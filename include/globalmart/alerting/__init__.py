"""Alert emails: from a message of the ``alerts`` Kafka topic to an email in the inbox.

- :mod:`.messages` parses and validates the alert messages the streaming apps publish;
- :mod:`.policy` decides, purely, which alerts are emailed, throttled or sent as one digest;
- :mod:`.rendering` turns an alert or a digest into an HTML email with a plain-text part;
- :mod:`.store` keeps the throttle state in PostgreSQL, so it survives restarts;
- :mod:`.delivery` sends an email through Airflow's SMTP provider;
- :mod:`.notifier` runs one poll's alerts through all of the above.
"""
