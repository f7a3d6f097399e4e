"""WSGI entry point for gunicorn: `gunicorn -c python:offload_web.gunicorn_conf offload_web.wsgi:app`."""

from offload_core import tracing
from offload_core.logs import configure_logging
from offload_core.settings import from_env
from offload_web.app import create_app
from offload_web.config import WebServerConfig

configure_logging("web")
tracing.configure("web")  # its settings were checked by gunicorn_conf, before the fork
app = create_app(status_port=from_env(WebServerConfig).status_port)
