"""`make dev`'s broker (scripts/dev-broker.sh): RabbitMQ 4.0 from the tree, with the parking
queues' policy, and a data directory another RabbitMQ series wrote moved aside, said so."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import pytest
import requests

from offload_core.topology import PARKED_RETENTION_POLICY
from offload_testkit.amqp import wait_for
from offload_testkit.processes import free_port
from offload_testkit.rabbitmq_tree import configured_tree

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]


def checkout(tmp_path: Path) -> Path:
    """The scripts and venv of this checkout, seen from a directory of the test's own (the
    broker keeps its data under <checkout>/.state)."""
    (tmp_path / "scripts").mkdir()
    for name in ("dev-broker.sh", "rabbitmq-tree.sh"):
        (tmp_path / "scripts" / name).symlink_to(ROOT / "scripts" / name)
    (tmp_path / ".venv").symlink_to(ROOT / ".venv")
    return tmp_path


@pytest.mark.parametrize("written_by", ["3.10", "4.0"], ids=["data-of-3.10", "control-data-of-4.0"])
def test_a_node_from_data_of_rabbitmq_3_is_started_fresh_and_the_old_data_kept_aside(tmp_path, written_by):
    """A .state/rabbitmq that 3.10 wrote (no series file) is moved aside, said so, and the node
    starts fresh; the control, data of the node's own series, is used as it is."""
    assert configured_tree(), "make test names the RabbitMQ tree (OFFLOAD_RABBITMQ_TREE)"
    repo = checkout(tmp_path)
    state = repo / ".state" / "rabbitmq"
    (state / "mnesia").mkdir(parents=True)
    (state / "mnesia" / "left-by-earlier-node").write_text(f"a node of RabbitMQ {written_by} wrote here\n")
    if written_by == "4.0":
        (state / "series").write_text("4.0\n")
    ports = {name: free_port() for name in ("AMQP", "MANAGEMENT", "DIST", "BROKER_METRICS")}
    env = os.environ | {f"OFFLOAD_DEV_{name}_PORT": str(port) for name, port in ports.items()}
    env["OFFLOAD_DEV_NODENAME"] = f"offload-dev-test-{ports['AMQP']}@localhost"
    log = tmp_path / "broker.log"
    with log.open("w") as out:
        command = [str(repo / "scripts" / "dev-broker.sh")]
        broker = subprocess.Popen(
            command, cwd=repo, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        management = f"http://127.0.0.1:{ports['MANAGEMENT']}/api"

        def policy() -> dict | None:
            try:
                answer = requests.get(f"{management}/policies", auth=("guest", "guest"), timeout=2)
            except requests.RequestException:
                return None
            return (
                next((p for p in answer.json() if p["name"] == PARKED_RETENTION_POLICY), None)
                if answer.ok
                else None
            )

        found = wait_for(
            policy, timeout=120, what=f"the dev broker and its policy ({log.read_text()[-2000:]})"
        )
        version = requests.get(f"{management}/overview", auth=("guest", "guest"), timeout=5).json()
    finally:
        os.killpg(broker.pid, signal.SIGTERM)
        broker.wait(60)
    text = log.read_text()
    assert version["rabbitmq_version"].startswith("4.0."), version["rabbitmq_version"]
    assert found["definition"]["delivery-limit"] == -1
    assert (state / "series").read_text() == "4.0\n"
    asides = [p for p in (repo / ".state").iterdir() if p.name.startswith("rabbitmq-before-4.0-")]
    if written_by == "4.0":
        assert asides == [] and "aside" not in text
        assert (state / "mnesia" / "left-by-earlier-node").exists()
        return
    [aside] = asides
    assert (aside / "mnesia" / "left-by-earlier-node").exists()
    assert not (state / "mnesia" / "left-by-earlier-node").exists()
    assert f"moved {state} aside to {aside}" in text
    assert f"RabbitMQ {version['rabbitmq_version']} node" in text
