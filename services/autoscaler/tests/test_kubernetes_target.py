"""The Kubernetes target through the real `kubernetes` client, against recorded bodies.

No API server runs on this machine yet (see the e2e issue), so a loopback HTTP server
replays an apps/v1 Deployment scale subresource as kube-apiserver 1.29 returns it (the
autoscaling/v1 Scale body below) and records what the client sends. What is checked:
the paths, verbs and patch body the target uses, and that it reads spec.replicas.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from kubernetes import client

from offload_autoscaler.targets import KubernetesDeployment

SCALE = {
    "kind": "Scale",
    "apiVersion": "autoscaling/v1",
    "metadata": {
        "name": "offload-mailer",
        "namespace": "offload",
        "uid": "5c0d4e0e-8d0f-4bb5-9a8e-2f1f0b2f3c11",
        "resourceVersion": "1843",
        "creationTimestamp": "2026-11-01T10:00:00Z",
    },
    "spec": {"replicas": 2},
    "status": {
        "replicas": 2,
        "selector": "app.kubernetes.io/name=offload,app.kubernetes.io/component=mailer",
    },
}
PATH = "/apis/apps/v1/namespaces/offload/deployments/offload-mailer/scale"


class RecordedApiServer:
    def __init__(self) -> None:
        self.scale = json.loads(json.dumps(SCALE))
        self.requests: list[tuple[str, str, str, dict | None]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def _reply(self, status: int, body: dict) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                outer.requests.append(("GET", self.path, "", None))
                if self.path == PATH:
                    self._reply(200, outer.scale)
                else:
                    self._reply(
                        404,
                        {
                            "kind": "Status",
                            "apiVersion": "v1",
                            "status": "Failure",
                            "code": 404,
                            "reason": "NotFound",
                            "message": "not found",
                        },
                    )

            def do_PATCH(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                outer.requests.append(("PATCH", self.path, self.headers["Content-Type"], body))
                outer.scale["spec"]["replicas"] = body["spec"]["replicas"]
                self._reply(200, outer.scale)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"


@pytest.fixture
def api_server():
    server = RecordedApiServer()
    yield server
    server.server.shutdown()


def test_reads_and_patches_only_the_scale_subresource(api_server):
    configuration = client.Configuration(host=api_server.url)
    target = KubernetesDeployment(
        "offload-mailer", "offload", api=client.AppsV1Api(client.ApiClient(configuration))
    )
    assert target.current() == 2
    target.scale(5)
    assert target.current() == 5
    verbs = [(verb, path) for verb, path, _, _ in api_server.requests]
    assert verbs == [("GET", PATH), ("PATCH", PATH), ("GET", PATH)]
    _, _, content_type, body = api_server.requests[1]
    assert body == {"spec": {"replicas": 5}}
    assert content_type in ("application/merge-patch+json", "application/strategic-merge-patch+json")


def test_a_missing_deployment_is_an_error_not_zero(api_server):
    configuration = client.Configuration(host=api_server.url)
    target = KubernetesDeployment("nope", "offload", api=client.AppsV1Api(client.ApiClient(configuration)))
    with pytest.raises(client.ApiException) as error:
        target.current()
    assert error.value.status == 404
