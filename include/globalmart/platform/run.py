"""Entry point supervisord starts for services that need an environment:
``python -m globalmart.platform.run NAME``.

Building the command and environment here (not in supervisord.conf) keeps secrets out of the
config file and the quoting in one place; ``execvpe`` makes the service supervisord's child.
"""

from __future__ import annotations

import os
import sys

from globalmart.platform.services import service_by_name
from globalmart.settings import load_settings


def main() -> None:
    (name,) = sys.argv[1:]
    service = service_by_name(load_settings(), name)
    os.execvpe(service.command[0], service.command, {**os.environ, **service.env})


if __name__ == "__main__":
    main()
