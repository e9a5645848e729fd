"""The ``mrclient`` command in secure mode: the secure demo, and ``call`` with credentials."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from mrclient.testing import LocalModelNode, LocalOrchestrator
from mrclient.testing.examples import BASE_CLASSNAME, EwmaTracker, TrackerBase
from mrclient.testing.secure import Cruncher, LocalCertificateAuthority

pytestmark = pytest.mark.subprocess  # the mrclient command

RUN_TIMEOUT = 120.0


def mrclient(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mrclient.cli", *args],
        capture_output=True, text=True, timeout=RUN_TIMEOUT, env={**os.environ, **(env or {})},
    )


def test_the_secure_demo_checks_identities_and_shows_a_rejection() -> None:
    done = mrclient("demo", "--secure", "--rounds", "1")
    assert done.returncode == 0, done.stderr
    assert "secure mode: mutual TLS" in done.stdout
    assert "SUCCESS" in done.stdout and "impostor" not in done.stdout.split("round 1")[1].split("reports")[0]
    assert "model-impostor: CONNECTION_FAILED (AUTH_ERROR: the node is signed by wallet" in done.stdout


def call(orchestrator: LocalOrchestrator, *options: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return mrclient(
        "call", "--host", "127.0.0.1", "--port", str(orchestrator.port), "--crunch-id", orchestrator.crunch_id,
        "--base-classname", BASE_CLASSNAME, "--init-timeout", "10", *options, "predict", env=env,
    )


def test_call_with_a_credentials_directory(tmp_path: Path, local_node: Callable[..., LocalModelNode]) -> None:
    authority = LocalCertificateAuthority()
    cruncher = Cruncher.generate()
    with LocalOrchestrator(crunch_id="secure-cli") as orchestrator:
        node = local_node(classes=[TrackerBase, EwmaTracker], secure=authority.mutual_tls_node("m1", cruncher))
        orchestrator.add_model(port=node.port, model_id="m1", name="secure-one", infos=cruncher.infos())

        done = call(orchestrator, "--credentials", str(authority.write_coordinator_files(tmp_path / "certs")))
        assert done.returncode == 0, done.stderr
        assert "secure-one" in done.stdout and "SUCCESS" in done.stdout

        without = call(orchestrator)
        assert without.returncode == 1 and "secure mode (it speaks TLS) and no credentials" in without.stderr

        missing = call(orchestrator, "--credentials", str(tmp_path / "nowhere"))
        said = " ".join(missing.stderr.split())  # wrapped at 80 columns
        assert missing.returncode == 2, "a bad command-line value"
        assert "argument --credentials: cannot read the CA certificate" in said and "nowhere/ca.crt" in said, said


def test_watch_health_reaches_a_mutual_tls_node(tmp_path: Path, local_node: Callable[..., LocalModelNode]) -> None:
    """The health channel of a secure node: the TLS probe pins its certificate; no Setup, no call."""
    authority = LocalCertificateAuthority()
    cruncher = Cruncher.generate()
    with LocalOrchestrator(crunch_id="secure-watch") as orchestrator:
        security = authority.mutual_tls_node("m1", cruncher)
        node = local_node(classes=[TrackerBase, EwmaTracker], secure=security)
        orchestrator.add_model(port=node.port, model_id="m1", name="secure-one", infos=cruncher.infos())
        process = subprocess.Popen(
            [sys.executable, "-m", "mrclient.cli", "watch", "--host", "127.0.0.1", "--port", str(orchestrator.port),
             "--crunch-id", "secure-watch", "--health", "--every", "0.2",
             "--credentials", str(authority.write_coordinator_files(tmp_path / "certs"))],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        try:
            assert process.stdout is not None
            lines = [process.stdout.readline() for _ in range(2)]  # bounded: a health answer comes within a sweep
            assert "running" in lines[0] and "m1" in lines[0], lines
            assert "health" in lines[1] and "m1 SERVING" in lines[1], lines
        finally:
            process.send_signal(signal.SIGINT)
            _, errors = process.communicate(timeout=RUN_TIMEOUT)
        assert process.returncode == 130, errors  # Ctrl-C
        assert node.instance is None  # never set up


def test_call_through_a_gateway_trusts_grpc_default_roots(tmp_path: Path, local_node: Callable[..., LocalModelNode]) -> None:
    """No roots given: gRPC's defaults, which GRPC_DEFAULT_SSL_ROOTS_FILE_PATH points at the test CA here."""
    authority = LocalCertificateAuthority()
    roots = tmp_path / "roots.pem"
    roots.write_bytes(authority.ca_pem)
    with LocalOrchestrator(crunch_id="gateway-cli") as orchestrator:
        security = authority.gateway_node()
        node = local_node(classes=[TrackerBase, EwmaTracker], secure=security)
        orchestrator.add_model(port=node.port, name="behind-a-gateway")
        key = authority.write_gateway_key(tmp_path / "gateway.key")

        done = call(orchestrator, "--gateway-key", str(key), env={"GRPC_DEFAULT_SSL_ROOTS_FILE_PATH": str(roots)})
        assert done.returncode == 0, done.stderr
        assert "behind-a-gateway" in done.stdout and "SUCCESS" in done.stdout
        assert [token.method.rsplit("/", 1)[1] for token in security.accepted] == ["Setup", "Call"]
