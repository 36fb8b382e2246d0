"""gunicorn settings for Sabha: ``gunicorn -c infra/gunicorn.conf.py``.

Everything can be changed through the environment:

- ``SABHA_BIND``: where to listen (default ``127.0.0.1:8000``; the reverse
  proxy in front talks to it). A Unix socket works too: ``unix:/run/sabha.sock``.
- ``SABHA_WORKERS``: worker processes (default: 2 per CPU core plus one, at most 16).
- ``SABHA_THREADS``: threads per worker (default 4), so a slow identity provider
  does not hold up other requests.
- ``SABHA_FORWARDED_ALLOW_IPS``: addresses of the reverse proxies whose
  ``X-Forwarded-Proto`` gunicorn believes (default ``127.0.0.1,::1``). Set
  ``SABHA_TRUSTED_PROXIES=1`` as well, so Sabha takes the client's address from
  ``X-Forwarded-For`` for its rate limits.

The access log names the path without its query string and no user or
referrer, so no token or sign-in code that ends up in a URL is written down.
"""

import multiprocessing
import os

wsgi_app = "sabha.platform.wsgi:app"
bind = [os.environ.get("SABHA_BIND", "127.0.0.1:8000")]
workers = int(os.environ.get("SABHA_WORKERS", min(multiprocessing.cpu_count() * 2 + 1, 16)))
threads = int(os.environ.get("SABHA_THREADS", 4))
worker_class = "gthread"
forwarded_allow_ips = os.environ.get("SABHA_FORWARDED_ALLOW_IPS", "127.0.0.1,::1")
timeout = 60
graceful_timeout = 30
keepalive = 5
# gunicorn's control socket lives at one path per user (~/.gunicorn/gunicorn.ctl), shared
# by every gunicorn that user runs; Sabha does not use it, and two platforms on one
# machine (or two test runs) would fight over it.
control_socket_disable = True
# Each worker builds its own app (and database connection pool) after the fork.
preload_app = False

accesslog = "-"
errorlog = "-"
# remote address, time, method, path (no query string), protocol, status, bytes, duration (µs),
# user agent
access_log_format = '%(h)s %(t)s "%(m)s %(U)s %(H)s" %(s)s %(B)s %(D)s "%(a)s"'
