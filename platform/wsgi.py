"""The production WSGI entry point: ``gunicorn sabha.platform.wsgi:app``.

Importing this module builds the app once from the ``SABHA_*`` settings (the
one module in ``sabha.platform`` that does work at import time, because
that is what a WSGI server expects). With ``SABHA_ENV=production`` it refuses
to start with the default or a short ``SABHA_SECRET_KEY``.

See ``infra/gunicorn.conf.py`` and README "Run Sabha for your community".
"""

from __future__ import annotations

import sys

from .app import create_app
from .errors import SabhaError

# gunicorn stops (instead of starting worker after worker) when one exits with this.
_WORKER_BOOT_ERROR = 3

try:
    app = create_app()
except SabhaError as exc:
    print(f"Sabha cannot start: {exc}", file=sys.stderr, flush=True)
    raise SystemExit(_WORKER_BOOT_ERROR) from None
