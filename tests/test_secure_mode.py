"""Secure mode end to end on loopback: LocalOrchestrator, secure LocalModelNodes, the concurrent runner.

Each rejection is shown twice where it can happen twice: at setup (the node is
bad from the start) and in a round (a node that passed its setup turns bad).
Either way the bad model is reported exactly once, with ``CONNECTION_FAILED``
and the reason, and the other models go on answering.
"""

from __future__ import annotations

import dataclasses
import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from mrclient import (
    DynamicSubclassModelConcurrentRunner,
    InvalidCoordinatorUsageError,
    ModelPredictResult,
    ModelRunner,
    SecureCredentials,
    TrainInferModelConcurrentRunner,
)
from mrclient.security.probe import node_server_name
from mrclient.testing import LocalModelNode, LocalOrchestrator
from mrclient.testing.examples import BASE_CLASSNAME, EwmaTracker, TrackerBase
from mrclient.testing.secure import (
    Cruncher,
    GatewayNodeSecurity,
    LocalCertificateAuthority,
    MutualTlsNodeSecurity,
    SignedIdentity,
    public_key_sha256,
)

SUCCESS = ModelPredictResult.Status.SUCCESS
FAILED = ModelPredictResult.Status.FAILED
TIMEOUT = ModelPredictResult.Status.TIMEOUT
WAIT = 10.0  # bound on every wait for the background threads
QUIET = 0.3  # how long to watch for a report that must not come
PAYLOAD = {"dove_location": 1.5}


@pytest.fixture(scope="module")
def authority() -> LocalCertificateAuthority:
    return LocalCertificateAuthority()


@dataclass
class Participant:
    model_id: str
    cruncher: Cruncher
    node: LocalModelNode


@dataclass
class SecureCrunch:
    """A local crunch whose nodes are secure; every runner made here is closed after the test."""

    authority: LocalCertificateAuthority
    orchestrator: LocalOrchestrator
    start_node: Callable[..., LocalModelNode]
    runners: list[Any] = field(default_factory=list)
    count: int = 0

    def add(
        self,
        security: Callable[[str, Cruncher], Any] | None = None,
        *,
        infos: dict[str, Any] | None = None,
        **node_options: Any,
    ) -> Participant:
        """A secure node for a new model (``security(model_id, cruncher)`` overrides its settings)."""
        self.count += 1
        model_id = f"secure-{self.count}"
        cruncher = Cruncher.generate()
        make = security or self.authority.mutual_tls_node
        node_options.setdefault("classes", [TrackerBase, EwmaTracker])
        node = self.start_node(secure=make(model_id, cruncher), **node_options)
        self.orchestrator.add_model(port=node.port, model_id=model_id, infos={**cruncher.infos(), **(infos or {})})
        return Participant(model_id, cruncher, node)

    def runner(self, cls: type = DynamicSubclassModelConcurrentRunner, init: bool = True, **options: Any) -> Any:
        settings: dict[str, Any] = dict(
            timeout=5.0,
            crunch_id=self.orchestrator.crunch_id,
            host="127.0.0.1",
            port=self.orchestrator.port,
            retry_backoff_factor=0.01,
        )
        if cls is DynamicSubclassModelConcurrentRunner:
            settings["base_classname"] = BASE_CLASSNAME
        if "gateway_credentials" not in options:
            settings["secure_credentials"] = self.authority.coordinator_credentials()
        settings.update(options)
        runner = cls(**settings)
        self.runners.append(runner)
        if init:
            runner.init(timeout=WAIT)
        return runner

    def reports_after(self, count: int) -> list[dict[str, Any]]:
        """The reports once ``count`` arrived, after a short watch for any more."""
        assert self.orchestrator.wait_for_reports(count, WAIT), self.orchestrator.reports
        self.orchestrator.wait_for_reports(count + 1, QUIET)
        return self.orchestrator.reports


@pytest.fixture
def crunch(local_node: Callable[..., LocalModelNode], authority: LocalCertificateAuthority) -> Iterator[SecureCrunch]:
    with LocalOrchestrator(crunch_id="secure") as orchestrator:
        kit = SecureCrunch(authority, orchestrator, local_node)
        try:
            yield kit
        finally:
            for runner in kit.runners:
                runner.close()


def by_model_id(results: dict[ModelRunner, ModelPredictResult]) -> dict[str, ModelPredictResult]:
    return {runner.model_id: result for runner, result in results.items()}


# -- what makes a node's identity wrong, at setup or in a round ------------------------------

Identity = Callable[[LocalCertificateAuthority, MutualTlsNodeSecurity, str, Cruncher], SignedIdentity | None]
Authority, Security = LocalCertificateAuthority, MutualTlsNodeSecurity


def _signed(**changes: Any) -> Identity:
    """An identity signed by the right cruncher over the right certificate, with ``changes`` to the message."""

    def make(authority: Authority, security: Security, model_id: str, cruncher: Cruncher) -> SignedIdentity:
        fields: dict[str, Any] = {"model_id": model_id}
        fields.update(changes)
        return cruncher.sign_identity(security.server_cert, **fields)

    return make


def _other_wallet(authority: Authority, security: Security, model_id: str, cruncher: Cruncher) -> SignedIdentity:
    return Cruncher.generate(hotkey=cruncher.hotkey).sign_identity(security.server_cert, model_id)


def _bad_signature(authority: Authority, security: Security, model_id: str, cruncher: Cruncher) -> SignedIdentity:
    good = cruncher.sign_identity(security.server_cert, model_id)
    other = cruncher.sign(good.message.replace(b'"hotkey"', b'"hotkey" '))  # signs other bytes
    return dataclasses.replace(good, signature_b64=other.signature_b64)


def _other_key(authority: Authority, security: Security, model_id: str, cruncher: Cruncher) -> SignedIdentity:
    _, other_cert = authority.issue("another node", dns_names=[node_server_name(model_id)])
    return cruncher.sign_identity(other_cert, model_id)


def _other_hotkey(authority: Authority, security: Security, model_id: str, cruncher: Cruncher) -> SignedIdentity:
    return dataclasses.replace(cruncher, hotkey="not-the-announced-hotkey").sign_identity(security.server_cert, model_id)


def _missing(authority: Authority, security: Security, model_id: str, cruncher: Cruncher) -> None:
    return None


#: kind -> (how the node's identity is wrong, what the reason says)
IDENTITY_FAULTS: dict[str, tuple[Identity, str]] = {
    "wrong wallet key": (_other_wallet, "not by the participant's"),
    "bad signature": (_bad_signature, "signature"),
    "cert_pub of another key": (_other_key, "another TLS key"),
    "wrong model_id": (_signed(model_id="someone-else"), "for model 'someone-else'"),
    "wrong hotkey": (_other_hotkey, "for hotkey 'not-the-announced-hotkey'"),
    "expired message": (_signed(expires_at=int(time.time()) - 60), "expired"),
    "non-integer expires_at": (_signed(expires_at="soon"), "non-integer expires_at"),
    "missing metadata": (_missing, "missing x-server-auth-message"),
}


def _identity_for(
    kind: str, authority: Authority, security: Security, model_id: str, cruncher: Cruncher
) -> SignedIdentity | None:
    make, _ = IDENTITY_FAULTS[kind]
    return make(authority, security, model_id, cruncher)


def _with_identity_fault(kind: str, authority: LocalCertificateAuthority) -> Callable[[str, Cruncher], MutualTlsNodeSecurity]:
    def make(model_id: str, cruncher: Cruncher) -> MutualTlsNodeSecurity:
        security = authority.mutual_tls_node(model_id, cruncher)
        return dataclasses.replace(security, identity=_identity_for(kind, authority, security, model_id, cruncher))

    return make


def _not_signed_by_the_ca(authority: LocalCertificateAuthority) -> Callable[[str, Cruncher], MutualTlsNodeSecurity]:
    return lambda model_id, cruncher: LocalCertificateAuthority().mutual_tls_node(model_id, cruncher)


def _named_for_another_model(authority: LocalCertificateAuthority) -> Callable[[str, Cruncher], MutualTlsNodeSecurity]:
    return lambda model_id, cruncher: authority.mutual_tls_node(
        model_id, cruncher, server_name=node_server_name("another-model")
    )


def _refusing_the_coordinator(authority: LocalCertificateAuthority) -> Callable[[str, Cruncher], MutualTlsNodeSecurity]:
    return lambda model_id, cruncher: dataclasses.replace(
        authority.mutual_tls_node(model_id, cruncher), coordinator_key_hashes=("0" * 64,)
    )


#: kind -> (node settings from the authority, what the reason says)
TLS_FAULTS: dict[str, tuple[Callable[[LocalCertificateAuthority], Callable[[str, Cruncher], MutualTlsNodeSecurity]], str]] = {
    "node certificate not signed by the CA": (_not_signed_by_the_ca, "not trusted"),
    "node certificate for another model's name": (_named_for_another_model, "Hostname mismatch"),
    "client certificate refused by the node": (_refusing_the_coordinator, "UNAUTHENTICATED"),
}


# -- a secure round ---------------------------------------------------------------------------


def test_a_secure_round_succeeds(crunch: SecureCrunch) -> None:
    participants = [crunch.add() for _ in range(3)]
    runner = crunch.runner()
    assert runner.wait_for_models(3, WAIT)

    runner.call("tick", args=[PAYLOAD])
    results = by_model_id(runner.call("predict"))

    assert {model_id: result.status for model_id, result in results.items()} == {p.model_id: SUCCESS for p in participants}
    assert all(result.result["ticks"] == 1 for result in results.values())
    assert all(model.health() for model in runner.models)  # the health channel speaks the same TLS
    assert crunch.orchestrator.reports == []


def test_a_secure_train_infer_round(crunch: SecureCrunch) -> None:
    def infer(stream: Iterator[Any]) -> Iterator[Any]:
        yield None
        for value in stream:
            yield value * 2

    crunch.add(classes=None, infer=infer)
    runner = crunch.runner(TrainInferModelConcurrentRunner)
    assert runner.wait_for_models(1, WAIT)
    (result,) = runner.predict(21).values()
    assert (result.status, result.result) == (SUCCESS, 42)


# -- rejections -----------------------------------------------------------------------------


@pytest.mark.parametrize("kind", [*IDENTITY_FAULTS, *TLS_FAULTS])
def test_a_node_that_fails_its_check_at_setup_is_reported_once(crunch: SecureCrunch, kind: str) -> None:
    good = [crunch.add(), crunch.add()]
    if kind in TLS_FAULTS:
        faulty, reason = TLS_FAULTS[kind]
        bad = crunch.add(faulty(crunch.authority))
    else:
        bad = crunch.add(_with_identity_fault(kind, crunch.authority))
        reason = IDENTITY_FAULTS[kind][1]

    runner = crunch.runner()
    assert runner.wait_for_models(2, WAIT)
    results = by_model_id(runner.call("predict"))

    assert {model_id: result.status for model_id, result in results.items()} == {p.model_id: SUCCESS for p in good}
    (report,) = crunch.reports_after(1)
    assert (report["model_id"], report["failure_code"]) == (bad.model_id, "CONNECTION_FAILED")
    assert report["failure_reason"].startswith("AUTH_ERROR: ") and reason in report["failure_reason"]


@pytest.mark.parametrize("kind", [*IDENTITY_FAULTS, "client certificate refused by the node"])
def test_a_node_that_turns_bad_fails_in_the_round_and_is_reported_once(crunch: SecureCrunch, kind: str) -> None:
    good = [crunch.add(), crunch.add()]
    bad = crunch.add()
    runner = crunch.runner()
    assert runner.wait_for_models(3, WAIT)
    assert {result.status for result in runner.call("predict").values()} == {SUCCESS}

    security = bad.node.secure
    assert isinstance(security, MutualTlsNodeSecurity)
    if kind in IDENTITY_FAULTS:
        bad.node.secure = dataclasses.replace(
            security, identity=_identity_for(kind, crunch.authority, security, bad.model_id, bad.cruncher)
        )
        reason = IDENTITY_FAULTS[kind][1]
    else:
        bad.node.secure = dataclasses.replace(security, coordinator_key_hashes=("0" * 64,))
        reason = "UNAUTHENTICATED"

    results = by_model_id(runner.call("predict"))
    assert {p.model_id: results[p.model_id].status for p in good} == {p.model_id: SUCCESS for p in good}
    failed = results[bad.model_id]
    assert failed.status is FAILED and failed.result is None
    assert failed.detail is not None and failed.detail.startswith("AUTH_ERROR: ") and reason in failed.detail

    (report,) = crunch.reports_after(1)
    assert (report["model_id"], report["failure_code"], report["failure_reason"]) == (
        bad.model_id, "CONNECTION_FAILED", failed.detail,
    )
    assert sorted(by_model_id(runner.call("predict"))) == sorted(p.model_id for p in good)
    assert len(crunch.orchestrator.reports) == 1


def test_with_reporting_off_a_rejected_model_is_dropped_not_reported(crunch: SecureCrunch) -> None:
    good, bad = crunch.add(), crunch.add()
    runner = crunch.runner(report_failure=False)
    assert runner.wait_for_models(2, WAIT)
    bad.node.secure = dataclasses.replace(bad.node.secure, identity=None)

    results = by_model_id(runner.call("predict"))
    assert results[bad.model_id].status is FAILED and results[good.model_id].status is SUCCESS
    assert [model.model_id for model in runner.models] == [good.model_id]
    assert not crunch.orchestrator.wait_for_reports(1, QUIET)


# -- the coordinator refused everywhere ---------------------------------------------------------


@pytest.mark.parametrize("nodes", [1, 3])
def test_every_node_refusing_the_coordinator_at_init_is_the_coordinators_error(crunch: SecureCrunch, nodes: int) -> None:
    for _ in range(nodes):
        crunch.add(_refusing_the_coordinator(crunch.authority))
    runner = crunch.runner(init=False)
    with pytest.raises(InvalidCoordinatorUsageError, match="certificate or key is not accepted"):
        runner.init(timeout=WAIT)
    assert not crunch.orchestrator.wait_for_reports(1, QUIET)


def test_a_coordinator_certificate_from_another_ca_is_refused_at_the_handshake(crunch: SecureCrunch) -> None:
    crunch.add(), crunch.add()
    stranger = LocalCertificateAuthority()
    credentials = SecureCredentials(crunch.authority.ca_pem, stranger.coordinator_cert, stranger.coordinator_key)
    runner = crunch.runner(init=False, secure_credentials=credentials)
    with pytest.raises(InvalidCoordinatorUsageError, match="certificate or key is not accepted"):
        runner.init(timeout=WAIT)
    assert not crunch.orchestrator.wait_for_reports(1, QUIET)


def test_every_node_refusing_the_coordinator_in_a_round_is_the_coordinators_error(crunch: SecureCrunch) -> None:
    participants = [crunch.add(), crunch.add()]
    runner = crunch.runner()
    assert runner.wait_for_models(2, WAIT)
    models = runner.models
    for participant in participants:
        participant.node.secure = dataclasses.replace(participant.node.secure, coordinator_key_hashes=("0" * 64,))

    with pytest.raises(InvalidCoordinatorUsageError, match="certificate or key is not accepted"):
        runner.call("predict")
    assert runner.models == models
    assert all(model.consecutive_failures == 0 and model.consecutive_timeouts == 0 for model in models)
    assert not crunch.orchestrator.wait_for_reports(1, QUIET)


def test_credentials_for_plain_nodes_are_the_coordinators_error(crunch: SecureCrunch, local_node: Callable[..., LocalModelNode]) -> None:
    for _ in range(2):
        node = local_node(classes=[TrackerBase, EwmaTracker])
        crunch.orchestrator.add_model(port=node.port)
    runner = crunch.runner(init=False)
    with pytest.raises(InvalidCoordinatorUsageError, match="not in secure mode"):
        runner.init(timeout=WAIT)
    assert not crunch.orchestrator.wait_for_reports(1, QUIET)


# -- certificate rotation ---------------------------------------------------------------------


def test_a_node_that_rotates_its_certificate_is_repinned_after_a_reconnect(crunch: SecureCrunch) -> None:
    participant = crunch.add()
    runner = crunch.runner(timeout=1.0)
    assert runner.wait_for_models(1, WAIT)
    (before,) = runner.models
    assert runner.call("predict")[before].status is SUCCESS

    rejoined = threading.Event()
    runner.on_model_joined(lambda model: rejoined.set(), replay=False)
    node = participant.node
    node.stop()
    node.secure = crunch.authority.mutual_tls_node(participant.model_id, participant.cruncher)  # a new key
    node.start()

    # The old channel trusts only the old certificate: the call's handshake fails,
    # which costs the model nothing and makes the runner reconnect, probing the
    # node again and pinning its new certificate.
    (result,) = runner.call("predict").values()
    assert result.status is TIMEOUT and "new TLS certificate" in str(result.detail)
    assert rejoined.wait(WAIT)
    (after,) = runner.models
    assert after is not before
    assert runner.call("predict")[after].status is SUCCESS
    assert crunch.orchestrator.reports == []


# -- gateway mode -------------------------------------------------------------------------------


def gateway(crunch: SecureCrunch, security: GatewayNodeSecurity | None = None) -> Participant:
    return crunch.add(lambda model_id, cruncher: security or crunch.authority.gateway_node())


def test_a_gateway_round_succeeds_with_a_valid_token_on_every_call(crunch: SecureCrunch) -> None:
    participants = [gateway(crunch), gateway(crunch)]
    runner = crunch.runner(gateway_credentials=crunch.authority.gateway_credentials())
    assert runner.wait_for_models(2, WAIT)
    runner.call("tick", args=[PAYLOAD])
    results = by_model_id(runner.call("predict"))
    assert {result.status for result in results.values()} == {SUCCESS}
    assert all(model.health() for model in runner.models)

    registered = public_key_sha256(crunch.authority.gateway_key)
    for participant in participants:
        security = participant.node.secure
        assert isinstance(security, GatewayNodeSecurity)
        assert [token.method.rsplit("/", 1)[1] for token in security.accepted] == ["Setup", "Call", "Call"]
        assert {token.model_id for token in security.accepted} == {participant.model_id}
        assert {token.public_key_sha256 for token in security.accepted} == {registered}
        assert all(abs(token.timestamp - time.time()) < 30 for token in security.accepted)
        assert security.refused == [] and security.health_calls == [False]
    assert crunch.orchestrator.reports == []


def test_a_gateway_that_does_not_know_the_key_refuses_it(crunch: SecureCrunch) -> None:
    good = gateway(crunch)
    stranger = dataclasses.replace(crunch.authority.gateway_node(), coordinator_key_hashes=("0" * 64,))
    bad = gateway(crunch, stranger)
    runner = crunch.runner(gateway_credentials=crunch.authority.gateway_credentials())
    assert runner.wait_for_models(1, WAIT)
    assert {model.model_id for model in runner.models} == {good.model_id}

    (report,) = crunch.reports_after(1)
    assert (report["model_id"], report["failure_code"]) == (bad.model_id, "CONNECTION_FAILED")
    assert "UNAUTHENTICATED" in report["failure_reason"] and "not registered" in report["failure_reason"]


def test_every_gateway_refusing_the_key_is_the_coordinators_error(crunch: SecureCrunch) -> None:
    for _ in range(2):
        gateway(crunch, dataclasses.replace(crunch.authority.gateway_node(), coordinator_key_hashes=("0" * 64,)))
    runner = crunch.runner(init=False, gateway_credentials=crunch.authority.gateway_credentials())
    with pytest.raises(InvalidCoordinatorUsageError, match="certificate or key is not accepted"):
        runner.init(timeout=WAIT)
    assert not crunch.orchestrator.wait_for_reports(1, QUIET)


def test_a_gateway_client_never_takes_a_node_for_an_unexpected_secure_one(
    crunch: SecureCrunch, local_node: Callable[..., LocalModelNode]
) -> None:
    plain = local_node(classes=[TrackerBase, EwmaTracker])
    model_id = crunch.orchestrator.add_model(port=plain.port)
    runner = crunch.runner(init=False, gateway_credentials=crunch.authority.gateway_credentials())
    runner.init(timeout=WAIT)  # no "secure mode and no credentials" error: TLS is expected here
    (report,) = crunch.reports_after(1)
    assert (report["model_id"], report["failure_code"]) == (model_id, "CONNECTION_FAILED")


# -- no credentials against secure nodes --------------------------------------------------------


def test_an_insecure_client_against_a_secure_node_gets_a_clear_error_within_5_seconds(crunch: SecureCrunch) -> None:
    crunch.add()
    runner = crunch.runner(init=False, secure_credentials=None)
    started = time.monotonic()
    with pytest.raises(InvalidCoordinatorUsageError, match="secure mode .* no credentials"):
        runner.init(timeout=WAIT)
    assert time.monotonic() - started < 5.0
    assert crunch.orchestrator.reports == []


# -- the issuer tool's formats ----------------------------------------------------------------


def test_certificates_and_messages_from_the_official_issuer_tool(crunch: SecureCrunch) -> None:
    """CA, node and coordinator certificates and the signed message made by PyPI ``crunch-certificate``."""
    from crunch_certificate import certificate, pem, sign
    from solders.keypair import Keypair

    ca_key, ca_cert = certificate.generate_ca(common_name="crunch CA", organization_name="test")
    issuer = certificate.LocalTlsCertificateIssuer(ca_key=ca_key, ca_cert=ca_cert)
    _, coordinator_key, coordinator_cert = certificate.generate_tls(
        certificate_issuer=issuer, common_name="coordinator", is_client=True
    )
    wallet = Keypair()
    signer = sign.KeypairSigner(wallet)

    def issued(model_id: str, *, with_model_id: bool = True) -> MutualTlsNodeSecurity:
        _, node_key, node_cert = certificate.generate_tls(
            certificate_issuer=issuer, common_name=model_id, san_dns=node_server_name(model_id),
            is_client=False, is_server=True,
        )
        message = signer.sign(
            cert_pub=certificate.get_public_key_as_string(node_cert),
            hot_key_provider=sign.StaticHotKeyProvider("hotkey-1"),
            model_id=model_id if with_model_id else None,
        )
        return MutualTlsNodeSecurity(
            server_key=pem.dumps(private_key=node_key).encode(),
            server_cert=pem.dumps(certificate=node_cert).encode(),
            client_ca=pem.dumps(certificate=ca_cert).encode(),
            coordinator_key_hashes=(public_key_sha256(coordinator_cert),),
            identity=SignedIdentity.from_json(json.dumps(message.to_dict())),
        )

    infos = {"cruncher_wallet_pubkey": str(wallet.pubkey()), "cruncher_hotkey": "hotkey-1"}
    good = crunch.add(lambda model_id, _: issued(model_id), infos=infos)
    old_shape = crunch.add(lambda model_id, _: issued(model_id, with_model_id=False), infos=infos)
    credentials = SecureCredentials(
        pem.dumps(certificate=ca_cert).encode(),
        pem.dumps(certificate=coordinator_cert).encode(),
        pem.dumps(private_key=coordinator_key).encode(),
    )
    runner = crunch.runner(secure_credentials=credentials)
    assert runner.wait_for_models(1, WAIT)
    assert by_model_id(runner.call("predict"))[good.model_id].status is SUCCESS

    # The older message shape (no model_id, as in the node's own test fixtures) is refused.
    (report,) = crunch.reports_after(1)
    assert report["model_id"] == old_shape.model_id and "for model None" in report["failure_reason"]


def test_a_secure_node_that_is_not_listening_is_retried_then_reported_unreachable(crunch: SecureCrunch) -> None:
    from conftest import free_port

    model_id = crunch.orchestrator.add_model(port=free_port(), infos=Cruncher.generate().infos())
    runner = crunch.runner()
    assert runner.models == []
    (report,) = crunch.reports_after(1)
    assert (report["model_id"], report["failure_code"]) == (model_id, "CONNECTION_FAILED")
    assert "no connection after 5 attempts: TLS probe" in report["failure_reason"]
