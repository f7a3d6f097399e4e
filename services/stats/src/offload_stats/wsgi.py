"""WSGI entry point: `gunicorn -c python:offload_stats.gunicorn_conf offload_stats.wsgi:app`."""

from offload_core.logs import configure_logging
from offload_stats.api import create_app

configure_logging("stats-api")
app = create_app()
