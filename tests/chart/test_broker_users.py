"""The built-in broker's users as the chart renders them, imported by a real RabbitMQ node.

The definitions in the chart's generated Secret are loaded the way the StatefulSet loads them
(definitions.import_backend = local_filesystem). The autoscaler's monitoring user must read
queue depths through the management API, and nothing else: no messages over AMQP, no changes
through the API. The admin user keeps full rights.
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path
from urllib.parse import urlsplit

import pika
import pytest
import requests
import yaml

from offload_autoscaler.sources import ManagementApiSource
from offload_autoscaler.spec import parse_scaled_object
from offload_testkit.k8s_tools import tool
from offload_testkit.rabbitmq import PrivateBroker

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "offload"


def rendered(template: str, *sets: str) -> dict:
    args = [tool("helm"), "template", "r", str(CHART), "-s", template]
    for value in sets:
        args += ["--set", value]
    result = subprocess.run(args, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return yaml.safe_load(result.stdout)


@pytest.fixture(scope="module")
def broker_with_chart_users(tmp_path_factory):
    secret = rendered("templates/rabbitmq/secret.yaml")["stringData"]
    config = rendered("templates/rabbitmq/configmap.yaml")["data"]["offload.conf"]
    assert "definitions.local.path = /etc/rabbitmq/definitions/definitions.json" in config
    workdir = tmp_path_factory.mktemp("broker-users")
    definitions = workdir / "definitions.json"
    definitions.write_text(secret["definitions.json"])
    broker = PrivateBroker(workdir / "rabbitmq")
    conf = workdir / "rabbitmq" / "rabbitmq.conf"
    conf.write_text(
        conf.read_text()
        + f"definitions.import_backend = local_filesystem\ndefinitions.local.path = {definitions}\n"
    )
    broker.http.auth = (secret["username"], secret["password"])  # no guest: the chart's users only
    broker.start()
    yield broker, secret
    broker.stop()


def local(url: str, broker: PrivateBroker, port: int) -> str:
    """The Secret's URL with the in-cluster host replaced by the test node's address."""
    parts = urlsplit(url)
    return parts._replace(netloc=f"{parts.username}:{parts.password}@127.0.0.1:{port}").geturl()


def test_only_the_charts_users_exist(broker_with_chart_users):
    broker, secret = broker_with_chart_users
    users = {line.split("\t")[0] for line in broker.ctl("list_users", "--quiet").splitlines()[1:]}
    assert users == {secret["username"], "offload-monitoring"}  # no guest, no default user


def test_the_monitoring_user_reads_queue_depths_and_nothing_else(broker_with_chart_users):
    broker, secret = broker_with_chart_users
    admin_url = local(secret["amqp-url"], broker, broker.amqp_port)
    connection = pika.BlockingConnection(pika.URLParameters(admin_url))
    channel = connection.channel()
    channel.confirm_delivery()
    channel.queue_declare("mailer.signups.high", durable=True, arguments={"x-queue-type": "quorum"})
    for _ in range(3):
        channel.basic_publish("", "mailer.signups.high", b"{}")
    connection.close()

    monitoring = local(secret["monitoring-url"], broker, broker.management_port)
    spec = parse_scaled_object(
        {
            "name": "mailer",
            "scaleTargetRef": {"name": "offload-mailer"},
            "triggers": [
                {
                    "type": "rabbitmq",
                    "metadata": {
                        "protocol": "http",
                        "queueName": "mailer.signups.high",
                        "value": "10",
                        "host": monitoring,
                    },
                }
            ],
        },
        "test",
    )
    source = ManagementApiSource(spec.triggers[0].host)
    deadline = time.monotonic() + 15
    reading = source.read(spec.triggers[0])
    while reading.value != 3 and time.monotonic() < deadline:  # the depth is sampled
        time.sleep(0.3)
        reading = source.read(spec.triggers[0])
    assert reading.error is None and reading.value == 3

    auth = ("offload-monitoring", secret["monitoring-password"])
    api = f"http://127.0.0.1:{broker.management_port}/api"
    assert requests.delete(f"{api}/queues/%2F/mailer.signups.high", auth=auth, timeout=5).status_code == 401
    created = requests.put(f"{api}/users/intruder", auth=auth, json={"password": "x", "tags": ""}, timeout=5)
    assert created.status_code == 401
    monitoring_amqp = (
        f"amqp://offload-monitoring:{secret['monitoring-password']}@127.0.0.1:{broker.amqp_port}/%2F"
    )
    connection = pika.BlockingConnection(pika.URLParameters(monitoring_amqp))
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as refused:
        connection.channel().basic_get("mailer.signups.high")
    assert refused.value.reply_code == 403
    with pytest.raises(pika.exceptions.ChannelClosedByBroker):
        connection.channel().queue_declare("made-by-monitoring")
    connection.close()


def test_the_autoscaler_and_keda_use_the_monitoring_user():
    result = subprocess.run(
        [tool("helm"), "template", "r", str(CHART)], capture_output=True, text=True, timeout=60
    )
    docs = [d for d in yaml.safe_load_all(result.stdout) if d]
    [autoscaler] = [
        d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"] == "r-offload-autoscaler"
    ]
    env = {e["name"]: e for e in autoscaler["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["OFFLOAD_MANAGEMENT_URL"]["value"].startswith(
        "http://$(RABBITMQ_MONITORING_USERNAME):$(RABBITMQ_MONITORING_PASSWORD)@"
    )
    keda_docs = subprocess.run(
        [tool("helm"), "template", "r", str(CHART), "--set", "autoscaling.engine=keda"],
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout
    [auth] = [d for d in yaml.safe_load_all(keda_docs) if d and d["kind"] == "TriggerAuthentication"]
    assert auth["spec"]["secretTargetRef"][0]["key"] == "monitoring-url"
    # With a Secret of the user's own, the chart cannot know a second user: the admin's URL.
    own = json.dumps(rendered("templates/rabbitmq/configmap.yaml", "rabbitmq.auth.existingSecret=mine"))
    assert "definitions" not in own
