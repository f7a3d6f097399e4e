"""WSGI entry point: `gunicorn -c python:offload_stats.gunicorn_conf offload_stats.wsgi:app`."""

from offload_core.logs import configure_logging
from offload_core.settings import from_env
from offload_stats.api import create_app
from offload_stats.config import StatsServerConfig

configure_logging("stats-api")
app = create_app(status_port=from_env(StatsServerConfig).status_port)
