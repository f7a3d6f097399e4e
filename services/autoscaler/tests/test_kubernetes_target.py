"""The Kubernetes target against a real kube-apiserver (offload_testkit's control plane),
authenticated as a ServiceAccount whose Role is as narrow as the chart's: get/patch/update on
the scale subresource of the runner Deployments by name, and nothing else."""

from __future__ import annotations

import uuid

import pytest
from kubernetes import client

from offload_autoscaler.targets import KubernetesDeployment
from offload_testkit.kube import api_client, service_account_kubeconfig


def deployment(name: str) -> dict:
    labels = {"app": name}
    return {
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": "runner", "image": "offload-mailer:dev"}]},
            },
        },
    }


@pytest.fixture
def namespace(kube_control_plane) -> str:
    admin = api_client(kube_control_plane.kubeconfig)
    name = f"target-{uuid.uuid4().hex[:8]}"
    core, apps, rbac = client.CoreV1Api(admin), client.AppsV1Api(admin), client.RbacAuthorizationV1Api(admin)
    core.create_namespace({"metadata": {"name": name}})
    for deployment_name in ("offload-mailer", "offload-web"):
        apps.create_namespaced_deployment(name, deployment(deployment_name))
    core.create_namespaced_service_account(name, {"metadata": {"name": "autoscaler"}})
    rbac.create_namespaced_role(
        name,
        {
            "metadata": {"name": "autoscaler"},
            "rules": [
                {
                    "apiGroups": ["apps"],
                    "resources": ["deployments/scale"],
                    "resourceNames": ["offload-mailer"],
                    "verbs": ["get", "patch", "update"],
                }
            ],
        },
    )
    rbac.create_namespaced_role_binding(
        name,
        {
            "metadata": {"name": "autoscaler"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "autoscaler"},
            "subjects": [{"kind": "ServiceAccount", "name": "autoscaler", "namespace": name}],
        },
    )
    yield name
    core.delete_namespace(name)


@pytest.fixture
def autoscaler_api(kube_control_plane, namespace, tmp_path) -> client.AppsV1Api:
    kubeconfig = service_account_kubeconfig(
        kube_control_plane.kubeconfig, namespace, "autoscaler", tmp_path / "autoscaler.kubeconfig"
    )
    return client.AppsV1Api(api_client(kubeconfig))


def test_reads_and_scales_through_the_scale_subresource(kube_control_plane, namespace, autoscaler_api):
    target = KubernetesDeployment("offload-mailer", namespace, api=autoscaler_api)
    assert target.current() == 2
    target.scale(5)
    assert target.current() == 5
    admin = client.AppsV1Api(api_client(kube_control_plane.kubeconfig))
    assert admin.read_namespaced_deployment("offload-mailer", namespace).spec.replicas == 5


def test_the_role_allows_nothing_beyond_the_named_scale(namespace, autoscaler_api):
    other = KubernetesDeployment("offload-web", namespace, api=autoscaler_api)
    with pytest.raises(client.ApiException) as error:
        other.scale(3)
    assert error.value.status == 403
    with pytest.raises(client.ApiException) as error:
        autoscaler_api.delete_namespaced_deployment("offload-mailer", namespace)
    assert error.value.status == 403


def test_a_missing_deployment_is_an_error_not_zero(kube_control_plane, namespace):
    admin = client.AppsV1Api(api_client(kube_control_plane.kubeconfig))
    target = KubernetesDeployment("nope", namespace, api=admin)
    with pytest.raises(client.ApiException) as error:
        target.current()
    assert error.value.status == 404
