"""``python -m globalmart.quality_gates``: export the suites into ``great_expectations/expectations/``."""

from globalmart.quality_gates.suites import export_suites

for path in export_suites():
    print(path)
