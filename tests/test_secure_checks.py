"""Secure mode's decisions from plain data: the identity check, gateway tokens, credentials, the misuse rule."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from mrclient import GatewayCredentials, MrclientError, SecureCredentials
from mrclient.cluster.misuse import coordinator_mistake
from mrclient.runners.base import CallOutcome, ErrorType
from mrclient.security import PLAINTEXT_NODE, REFUSED, AuthError
from mrclient.security.identity import ExpectedIdentity, NodeIdentity, check_node_identity, identity_headers
from mrclient.security.transport import GatewayTransport
from mrclient.testing.secure import Cruncher, LocalCertificateAuthority, SignedIdentity, public_key_der

NOW = 1_800_000_000


@pytest.fixture(scope="module")
def authority() -> LocalCertificateAuthority:
    return LocalCertificateAuthority()


@pytest.fixture(scope="module")
def node_cert(authority: LocalCertificateAuthority) -> bytes:
    return authority.issue("node", dns_names=["model-node-m1.crunchdao.internal"])[1]


@pytest.fixture(scope="module")
def cruncher() -> Cruncher:
    return Cruncher.generate(hotkey="hk-1")


def expected(cruncher: Cruncher, node_cert: bytes, **changes: object) -> ExpectedIdentity:
    fields: dict[str, object] = dict(
        model_id="m1", wallet_pubkey=cruncher.wallet_pubkey, hotkey=cruncher.hotkey, cert_pub=public_key_der(node_cert)
    )
    fields.update(changes)
    return ExpectedIdentity(**fields)  # type: ignore[arg-type]


def headers(identity: SignedIdentity) -> tuple[str, str, str]:
    return identity.message_b64, identity.signature_b64, identity.wallet_pubkey_b58


def check(identity: SignedIdentity | tuple[object, object, object], expect: ExpectedIdentity, now: float | None = NOW) -> int | None:
    values = headers(identity) if isinstance(identity, SignedIdentity) else identity
    return check_node_identity(values, expect, now=now)


# -- the identity check ---------------------------------------------------------------------


def test_a_good_identity_passes_and_returns_its_expiry(cruncher: Cruncher, node_cert: bytes) -> None:
    assert check(cruncher.sign_identity(node_cert, "m1"), expected(cruncher, node_cert)) is None
    assert check(cruncher.sign_identity(node_cert, "m1", expires_at=NOW + 60), expected(cruncher, node_cert)) == NOW + 60


@pytest.mark.parametrize(
    "changes, reason",
    [
        ({"model_id": "m2"}, "for model 'm1', not 'm2'"),
        ({"hotkey": "other"}, "for hotkey 'hk-1', not 'other'"),
        ({"hotkey": None}, "for hotkey 'hk-1', not None"),  # strict: the message's hotkey is not ignored
        ({"wallet_pubkey": "11111111111111111111111111111111"}, "not by the participant's"),
        ({"wallet_pubkey": None}, "not by the participant's"),
        ({"cert_pub": b"another key"}, "another TLS key"),
    ],
)
def test_each_announced_value_must_match_exactly(cruncher: Cruncher, node_cert: bytes, changes: dict[str, object], reason: str) -> None:
    with pytest.raises(AuthError, match=reason) as caught:
        check(cruncher.sign_identity(node_cert, "m1"), expected(cruncher, node_cert, **changes))
    assert caught.value.code is None  # the node's fault, not the coordinator's


def test_comparisons_are_strict_about_types(cruncher: Cruncher, node_cert: bytes) -> None:
    numeric = Cruncher(cruncher.wallet_key, hotkey=7)  # type: ignore[arg-type]
    with pytest.raises(AuthError, match="for hotkey 7, not '7'"):
        check(numeric.sign_identity(node_cert, "m1"), expected(numeric, node_cert, hotkey="7"))
    with pytest.raises(AuthError, match="for model None, not ''"):
        check(cruncher.sign_identity(node_cert, None), expected(cruncher, node_cert, model_id=""))


def test_the_wallet_is_compared_before_the_signature(cruncher: Cruncher, node_cert: bytes) -> None:
    good = cruncher.sign_identity(node_cert, "m1")
    forged = (good.message_b64, base64.b64encode(b"\0" * 64).decode(), Cruncher.generate().wallet_pubkey)
    with pytest.raises(AuthError, match="not by the participant's"):
        check(forged, expected(cruncher, node_cert))
    with pytest.raises(AuthError, match="does not verify"):
        check((good.message_b64, forged[1], good.wallet_pubkey_b58), expected(cruncher, node_cert))


def test_the_signature_covers_the_message_bytes_as_sent(cruncher: Cruncher, node_cert: bytes) -> None:
    good = cruncher.sign_identity(node_cert, "m1")
    same_json_other_bytes = base64.b64encode(json.dumps(json.loads(good.message), separators=(",", ":")).encode()).decode()
    with pytest.raises(AuthError, match="does not verify"):
        check((same_json_other_bytes, good.signature_b64, good.wallet_pubkey_b58), expected(cruncher, node_cert))


@pytest.mark.parametrize("value", ["soon", "1800000060", 1.5, True, None, [1]])
def test_a_non_integer_expiry_is_an_identity_failure(cruncher: Cruncher, node_cert: bytes, value: object) -> None:
    payload = {"cert_pub": base64.b64encode(public_key_der(node_cert)).decode(), "hotkey": "hk-1", "model_id": "m1"}
    identity = cruncher.sign(json.dumps({**payload, "expires_at": value}).encode())
    with pytest.raises(AuthError, match="non-integer expires_at"):
        check(identity, expected(cruncher, node_cert))


def test_an_expired_message_fails_unless_expiry_is_not_checked(cruncher: Cruncher, node_cert: bytes) -> None:
    identity = cruncher.sign_identity(node_cert, "m1", expires_at=NOW - 1)
    with pytest.raises(AuthError, match=r"expired at 2027-01-15T07:59:59\+00:00 \(expires_at=1799999999\)"):
        check(identity, expected(cruncher, node_cert))
    assert check(identity, expected(cruncher, node_cert), now=None) == NOW - 1
    assert check(cruncher.sign_identity(node_cert, "m1", expires_at=NOW), expected(cruncher, node_cert)) == NOW


@pytest.mark.parametrize(
    "values, reason",
    [
        ((None, "c2ln", "w"), "missing x-server-auth-message"),
        (("bWVzc2FnZQ==", "", "w"), "missing x-server-auth-signature"),
        (("bWVzc2FnZQ==", "c2ln", None), "missing x-server-wallet-pubkey"),
        ((b"bWVzc2FnZQ==", b"c2ln", b"w"), "not text"),
        (("a", "c2ln", "w"), "not base64"),
        (("bWVzc2FnZQ==", "c2ln", "0OIl"), "not base58"),
    ],
)
def test_malformed_headers_are_identity_failures(
    cruncher: Cruncher, node_cert: bytes, values: tuple[object, object, object], reason: str
) -> None:
    with pytest.raises(AuthError, match=reason):
        check(values, expected(cruncher, node_cert))


@pytest.mark.parametrize(
    "message, reason",
    [(b"\xff", "not JSON"), (b"[1]", "not a JSON object"), (b'{"hotkey": "hk-1"}', "no cert_pub"), (b"[" * 5000, "not JSON")],
)
def test_malformed_messages_are_identity_failures(cruncher: Cruncher, node_cert: bytes, message: bytes, reason: str) -> None:
    with pytest.raises(AuthError, match=reason):
        check(cruncher.sign(message), expected(cruncher, node_cert))


def test_header_names_are_read_case_insensitively(cruncher: Cruncher) -> None:
    metadata = [("X-Server-Auth-Message", "m"), ("x-other", "o"), ("X-SERVER-AUTH-SIGNATURE", "s"), ("x-server-wallet-pubkey", "w")]
    assert identity_headers(metadata) == ("m", "s", "w")
    assert identity_headers(None) == (None, None, None)


def test_a_connection_checks_a_signature_once_then_only_the_expiry(cruncher: Cruncher, node_cert: bytes) -> None:
    identity = cruncher.sign_identity(node_cert, "m1", expires_at=NOW + 10)
    infos = {"cruncher_wallet_pubkey": cruncher.wallet_pubkey, "cruncher_hotkey": cruncher.hotkey}
    checker = NodeIdentity("m1", public_key_der(node_cert), infos)
    checker.check(identity.metadata(), NOW)
    checker.check(identity.metadata(), NOW + 10)
    with pytest.raises(AuthError, match="expired"):
        checker.check(identity.metadata(), NOW + 11)
    assert NodeIdentity("m1", public_key_der(node_cert), infos, check_expiry=False).check(identity.metadata(), NOW + 11) is None

    infos["cruncher_hotkey"] = "rotated"  # the orchestrator's refresh applies at once
    with pytest.raises(AuthError, match="not 'rotated'"):
        checker.check(identity.metadata(), NOW)


# -- gateway tokens ---------------------------------------------------------------------------


def test_a_gateway_token_is_the_compact_json_signed_with_pkcs1v15_sha256(authority: LocalCertificateAuthority) -> None:
    credentials = GatewayCredentials(authority.gateway_key)
    token = dict(credentials.token("42", now=1735689600.9))
    message = base64.b64decode(token["x-gateway-auth-message"])
    assert message == b'{"model_id":"42","timestamp":1735689600}'
    public_der = base64.b64decode(token["x-gateway-auth-pubkey"])
    assert public_der == public_key_der(authority.gateway_key)
    public_key = serialization.load_der_public_key(public_der)
    assert isinstance(public_key, rsa.RSAPublicKey)
    public_key.verify(base64.b64decode(token["x-gateway-auth-signature"]), message, padding.PKCS1v15(), hashes.SHA256())
    assert all(value.isascii() for value in token.values())


def test_a_gateway_transport_signs_once_per_second(authority: LocalCertificateAuthority) -> None:
    transport = GatewayTransport(GatewayCredentials(authority.gateway_key), "m1")
    first = transport.call_metadata(now=NOW + 0.1)
    assert transport.call_metadata(now=NOW + 0.9) is first
    later = transport.call_metadata(now=NOW + 1.0)
    assert later != first and b'"timestamp":1800000001' in base64.b64decode(dict(later)["x-gateway-auth-message"])


def _pem(key: object) -> bytes:
    return key.private_bytes(  # type: ignore[attr-defined, no-any-return]
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def test_gateway_credentials_load_as_the_reference_does(tmp_path: Path, authority: LocalCertificateAuthority) -> None:
    key_path = authority.write_gateway_key(tmp_path / "gateway.key")
    cert_path = tmp_path / "ignored.crt"
    cert_path.write_bytes(b"not even a certificate")
    for credentials in (GatewayCredentials.from_files(key_path), GatewayCredentials.from_files(cert_path, key_path)):
        assert credentials.public_key_b64 == base64.b64encode(public_key_der(authority.gateway_key)).decode()
    with pytest.raises(MrclientError, match="missing.key"):
        GatewayCredentials.from_files(tmp_path / "missing.key")


def test_gateway_credentials_accept_only_rsa() -> None:
    ec_key = ec.generate_private_key(ec.SECP256R1())
    with pytest.raises(TypeError, match="RSA private key, got .*EllipticCurvePrivateKey"):
        GatewayCredentials.from_pem(_pem(ec_key))
    with pytest.raises(TypeError, match="RSA private key, got object"):
        GatewayCredentials(object())


# -- mutual-TLS credentials -------------------------------------------------------------------


def test_secure_credentials_load_from_a_directory(tmp_path: Path, authority: LocalCertificateAuthority) -> None:
    authority.write_coordinator_files(tmp_path)
    credentials = SecureCredentials.from_directory(tmp_path)
    assert (credentials.ca_bytes, credentials.cert_bytes, credentials.key_bytes) == (
        authority.ca_pem, authority.coordinator_cert, authority.coordinator_key,
    )
    assert credentials.check_expiry and not SecureCredentials.from_directory(tmp_path, check_expiry=False).check_expiry
    assert credentials.ssl_context.verify_mode.name == "CERT_REQUIRED" and credentials.ssl_context.check_hostname


def test_secure_credentials_name_what_is_wrong(tmp_path: Path, authority: LocalCertificateAuthority) -> None:
    authority.write_coordinator_files(tmp_path)
    (tmp_path / "tls.key").unlink()
    with pytest.raises(MrclientError, match="coordinator key .*tls.key"):
        SecureCredentials.from_directory(tmp_path)
    other_key = authority.issue("someone else", client=True)[0]
    with pytest.raises(MrclientError, match="do not load together"):
        SecureCredentials(authority.ca_pem, authority.coordinator_cert, other_key)
    with pytest.raises(MrclientError, match="CA certificate is not a PEM certificate"):
        SecureCredentials(b"garbage", authority.coordinator_cert, authority.coordinator_key)


@pytest.mark.subprocess
def test_the_plain_install_never_imports_the_secure_extra(tmp_path: Path) -> None:
    script = (
        "import sys\n"
        "sys.modules['cryptography'] = None\n"
        "import mrclient\n"
        "from mrclient.testing import LocalModelNode\n"
        "assert 'base58' not in sys.modules\n"
        "try:\n"
        "    mrclient.SecureCredentials(b'', b'', b'')\n"
        "except ImportError as error:\n"
        "    print(error)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "pip install '.[secure]' in a clone of mrclient" in done.stdout and "cryptography" in done.stdout


# -- the misuse rule --------------------------------------------------------------------------

REFUSAL = CallOutcome(error=ErrorType.AUTH_ERROR, detail="AUTH_ERROR: refused", code=REFUSED)
PLAIN = CallOutcome(error=ErrorType.AUTH_ERROR, detail="AUTH_ERROR: not TLS", code=PLAINTEXT_NODE)
IMPOSTOR = CallOutcome(error=ErrorType.AUTH_ERROR, detail="AUTH_ERROR: wrong wallet")
SILENT = CallOutcome(error=ErrorType.TIMEOUT, detail="DEADLINE_EXCEEDED")
GONE = CallOutcome(error=ErrorType.GRPC_CONNECTION_FAILED)


@pytest.mark.parametrize(
    "outcomes, called, mistake",
    [
        ([REFUSAL, REFUSAL], 2, "certificate or key is not accepted"),
        ([REFUSAL], 1, "certificate or key is not accepted"),  # the only model
        ([REFUSAL, SILENT, GONE], 3, None),  # one answer is not enough among several
        ([REFUSAL, REFUSAL, SILENT, GONE], 4, "certificate or key is not accepted"),  # silence says nothing
        ([PLAIN, PLAIN], 2, "not in secure mode"),
        ([REFUSAL, CallOutcome()], 2, None),  # someone accepted us
        ([REFUSAL, IMPOSTOR], 2, None),
        ([REFUSAL, PLAIN], 2, None),  # not the same refusal
        ([IMPOSTOR, IMPOSTOR], 2, None),  # the nodes' fault, however many
        ([SILENT, SILENT], 2, None),
        ([], 0, None),
    ],
)
def test_the_coordinator_is_at_fault_when_every_answer_is_the_same_refusal(
    outcomes: list[CallOutcome], called: int, mistake: str | None
) -> None:
    found = coordinator_mistake(outcomes, called)
    if mistake is None:
        assert found is None
    else:
        assert found is not None and mistake in found and outcomes[0].detail in found


# -- the TLS probe's bound ----------------------------------------------------------------------


@pytest.mark.serial
def test_the_probe_gives_up_on_a_node_that_never_answers_and_says_it_may_be_retried(authority: LocalCertificateAuthority) -> None:
    import socket
    import time

    from mrclient.security.probe import probe_node_certificate

    with socket.create_server(("127.0.0.1", 0)) as silent:  # accepts (the backlog does) and never speaks
        port = silent.getsockname()[1]
        started = time.monotonic()
        with pytest.raises(OSError):  # not an AuthError: the retry policy tries again
            probe_node_certificate("127.0.0.1", port, "model-node-m1.crunchdao.internal",
                                   authority.coordinator_credentials().ssl_context, timeout=0.5)
        assert time.monotonic() - started < 0.5 + 1.0


@pytest.mark.parametrize(
    "code, subject, expected",
    [
        ("BAD_IMPLEMENTATION", "method 'predcit'", "every model answered BAD_IMPLEMENTATION for method 'predcit'"),
        ("INVALID_ARGUMENT", "method 'tick'", "every model refused method 'tick' as invalid"),
        ("FAILED_PRECONDITION", None, "every model refused the call: it was not set up"),
    ],
)
def test_a_node_refusing_the_call_itself_from_every_model_names_what_was_called(
    code: str, subject: str | None, expected: str
) -> None:
    outcome = CallOutcome(error=ErrorType.FAILED, detail=f"{code}: the node's words", code=code)
    found = coordinator_mistake([outcome, outcome], 2, subject)
    assert found is not None and found.startswith(expected) and found.endswith("the node said: " + outcome.detail)
    assert coordinator_mistake([outcome, CallOutcome()], 2, subject) is None
