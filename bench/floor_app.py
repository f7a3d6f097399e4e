"""The floor of `make bench-web`: the least a Flask signup endpoint can cost under our gunicorn
settings. It reads the JSON body, runs the web's own validation and answers 202 with an id;
no request bookkeeping, no metrics, no analytics, no publishing. Our endpoint is reported
against it (`ratio web_signup_..._vs_floor`).
"""

from __future__ import annotations

import uuid
from typing import Any

from flask import Flask, jsonify, request

from offload_web.signups import validate_signup

app = Flask(__name__)


@app.post("/api/v1/signups")
def create_signup() -> Any:
    signup, errors = validate_signup(request.get_json(silent=True))
    if signup is None:
        return jsonify({"errors": errors}), 422
    return jsonify({"id": str(uuid.uuid4()), "status": "queued"}), 202


@app.get("/readyz")
def ready() -> Any:
    return "ok"
