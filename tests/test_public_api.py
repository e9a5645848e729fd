"""The public surface is the contract of DESIGN.md: names importable from ``mrclient``."""

from __future__ import annotations

from pathlib import Path

import pytest

import mrclient
from conftest import TlsMaterial


def test_the_design_cards_import_line_works() -> None:
    from mrclient import (  # noqa: F401  (the exact list DESIGN.md shows)
        Argument,
        DynamicSubclassModelConcurrentRunner,
        DynamicSubclassModelRunner,
        GatewayCredentials,
        InvalidCoordinatorUsageError,
        KwArgument,
        ModelCluster,
        ModelConcurrentRunner,
        ModelPredictResult,
        ModelRunner,
        SecureCredentials,
        TrainInferModelConcurrentRunner,
        TrainInferModelRunner,
        Variant,
        VariantType,
        decode_data,
        encode_data,
    )
    from mrclient.testing import LocalModelNode, LocalOrchestrator  # noqa: F401

    assert issubclass(InvalidCoordinatorUsageError, mrclient.MrclientError)
    assert issubclass(DynamicSubclassModelConcurrentRunner, ModelConcurrentRunner)
    assert [s.name for s in ModelPredictResult.Status] == ["SUCCESS", "FAILED", "TIMEOUT"]


def test_all_lists_exactly_the_public_names() -> None:
    exported = {name for name in dir(mrclient) if not name.startswith("_") and name[0].isupper() or name in {"decode_data", "encode_data"}}
    assert set(mrclient.__all__) - {"__version__"} == exported
    for name in mrclient.__all__:
        assert getattr(mrclient, name) is not None


def test_secure_credentials_load_from_a_directory(tmp_path: Path, tls_material: TlsMaterial) -> None:
    (tmp_path / "ca.crt").write_bytes(tls_material.ca_cert)
    (tmp_path / "tls.crt").write_bytes(tls_material.server_cert)
    (tmp_path / "tls.key").write_bytes(tls_material.server_key)
    credentials = mrclient.SecureCredentials.from_directory(tmp_path)
    assert (credentials.ca_bytes, credentials.cert_bytes, credentials.key_bytes) == (
        tls_material.ca_cert, tls_material.server_cert, tls_material.server_key,
    )


def test_gateway_credentials_accept_only_rsa(tls_material: TlsMaterial) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    assert mrclient.GatewayCredentials.from_pem(pem).private_key.key_size == 2048
    with pytest.raises(TypeError, match="RSA"):
        mrclient.GatewayCredentials.from_pem(tls_material.server_key)  # an EC key


def test_secure_mode_is_refused_clearly_until_it_is_supported(tls_material: TlsMaterial) -> None:
    credentials = mrclient.SecureCredentials(tls_material.ca_cert, tls_material.server_cert, tls_material.server_key)
    options = dict(timeout=1, crunch_id="c", host="127.0.0.1", port=1, base_classname="a.B")
    with pytest.raises(NotImplementedError, match="secure mode"):
        mrclient.DynamicSubclassModelConcurrentRunner(secure_credentials=credentials, **options)
    with pytest.raises(mrclient.InvalidCoordinatorUsageError, match="not both"):
        mrclient.DynamicSubclassModelConcurrentRunner(
            secure_credentials=credentials, gateway_credentials=mrclient.GatewayCredentials(object()), **options
        )


def test_local_orchestrator_without_websockets_names_the_extra(tmp_path: Path) -> None:
    import subprocess
    import sys

    script = (
        "import sys; sys.modules['websockets'] = None\n"
        "try:\n"
        "    from mrclient.testing import LocalOrchestrator\n"
        "except ImportError as error:\n"
        "    print(error)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert "pip install 'mrclient[testing]'" in done.stdout, done.stderr
