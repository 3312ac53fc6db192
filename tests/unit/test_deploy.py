"""deploy/ stays valid: Kubernetes manifests pass offline schema validation, the policies
ConfigMap equals policies/, and the compose file and image keep their promises."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
kubernetes_validate = pytest.importorskip(
    "kubernetes_validate", reason="kubernetes-validate is not installed"
)


@pytest.mark.parametrize("path", sorted((DEPLOY / "k8s").glob("*.yaml")), ids=lambda p: p.name)
def test_manifest_is_valid_kubernetes(path: Path) -> None:
    for doc in yaml.safe_load_all(path.read_text()):
        if doc:
            kubernetes_validate.validate(doc, "1.37.0", strict=True)


def test_every_kind_the_issue_asks_for_is_there() -> None:
    kinds = {
        doc["kind"]
        for path in (DEPLOY / "k8s").glob("*.yaml")
        for doc in yaml.safe_load_all(path.read_text())
        if doc
    }
    assert {
        "Deployment",
        "Service",
        "HorizontalPodAutoscaler",
        "PodDisruptionBudget",
        "ConfigMap",
        "Secret",
        "Job",
    } <= kinds


def test_deployment_has_probes_resources_and_runs_as_non_root() -> None:
    deployment = yaml.safe_load((DEPLOY / "k8s" / "deployment.yaml").read_text())
    pod = deployment["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["resources"]["requests"] and container["resources"]["limits"]
    assert pod["securityContext"]["runAsNonRoot"] is True


def test_policies_configmap_equals_policies_dir() -> None:
    configmap = yaml.safe_load((DEPLOY / "k8s" / "configmap-policies.yaml").read_text())
    for name, text in configmap["data"].items():
        assert text == (ROOT / "policies" / name).read_text(), (
            f"{name} differs from policies/: regenerate deploy/k8s/configmap-policies.yaml"
        )
    assert set(configmap["data"]) == {"model.conf", "catalogue.toml", "authzen.toml"}


def test_compose_has_postgres_replicas_a_balancer_and_mail() -> None:
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    services = compose["services"]
    assert {"postgres", "migrate", "delegauth", "lb", "mail"} <= set(services)
    assert services["delegauth"]["deploy"]["replicas"] >= 2
    assert services["delegauth"]["environment"]["DELEGAUTH_DATABASE_URL"].startswith(
        "postgresql://"
    )
    assert "healthcheck" in services["postgres"]


def test_image_is_non_root_with_a_healthcheck() -> None:
    text = (DEPLOY / "Containerfile").read_text()
    assert "\nUSER 10001\n" in text and "HEALTHCHECK" in text and "/healthz" in text
