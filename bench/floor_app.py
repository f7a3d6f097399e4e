"""The floor of `make bench-web`: the least a Flask signup endpoint can cost under our gunicorn
settings. It reads the JSON body, runs the web's own validation and answers 202 with an id
(made as the web makes its ids); no request bookkeeping, no metrics, no analytics, no
publishing. Our endpoint is reported against it (`ratio web_signup_..._vs_floor`).
"""

from __future__ import annotations

from typing import Any

from flask import Flask, jsonify, request

from offload_core import fewer_syscalls
from offload_core.config import CoreConfig
from offload_core.ids import random_uuid
from offload_web.signups import validate_signup

app = Flask(__name__)
fewer_syscalls.apply(CoreConfig.from_env().fewer_syscalls)  # ids made as the web makes them


@app.post("/api/v1/signups")
def create_signup() -> Any:
    signup, errors = validate_signup(request.get_json(silent=True))
    if signup is None:
        return jsonify({"errors": errors}), 422
    return jsonify({"id": str(random_uuid()), "status": "queued"}), 202


@app.get("/readyz")
def ready() -> Any:
    return "ok"
