"""The public surface is the contract of DESIGN.md: names importable from ``mrclient``."""

from __future__ import annotations

from pathlib import Path

import pytest

import mrclient


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
    from mrclient.aio import AsyncRunner  # noqa: F401
    from mrclient.testing import LocalModelNode, LocalOrchestrator  # noqa: F401

    assert issubclass(InvalidCoordinatorUsageError, mrclient.MrclientError)
    assert issubclass(DynamicSubclassModelConcurrentRunner, ModelConcurrentRunner)
    assert [s.name for s in ModelPredictResult.Status] == ["SUCCESS", "FAILED", "TIMEOUT"]


def test_all_lists_exactly_the_public_names() -> None:
    functions = {"decode_data", "encode_data", "shard_of"}
    exported = {name for name in dir(mrclient) if not name.startswith("_") and name[0].isupper() or name in functions}
    assert set(mrclient.__all__) - {"__version__"} == exported
    for name in mrclient.__all__:
        assert getattr(mrclient, name) is not None


def test_credentials_are_checked_at_construction() -> None:
    from mrclient.testing.secure import LocalCertificateAuthority

    authority = LocalCertificateAuthority()
    options = dict(timeout=1, crunch_id="c", host="127.0.0.1", port=1, base_classname="a.B")
    with pytest.raises(mrclient.InvalidCoordinatorUsageError, match="not both"):
        mrclient.DynamicSubclassModelConcurrentRunner(
            secure_credentials=authority.coordinator_credentials(),
            gateway_credentials=authority.gateway_credentials(),
            **options,
        )
    with pytest.raises(mrclient.InvalidCoordinatorUsageError, match="SecureCredentials.from_directory"):
        mrclient.DynamicSubclassModelConcurrentRunner(secure_credentials="/path/to/certs", **options)
    del options["base_classname"]
    with pytest.raises(mrclient.InvalidCoordinatorUsageError, match="GatewayCredentials.from_files"):
        mrclient.TrainInferModelConcurrentRunner(gateway_credentials=b"key", **options)


@pytest.mark.subprocess
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
    assert "pip install '.[testing]' in a clone of mrclient" in done.stdout, done.stderr


def test_the_module_paths_of_the_runners_and_results_still_import() -> None:
    """``mrclient.concurrent`` became a package (one module per kind): the old import paths name the same objects."""
    from mrclient.concurrent import (
        POOL_HEADROOM,
        DynamicSubclassModelConcurrentRunner,
        ModelConcurrentRunner,
        ModelPredictResult,
        TrainInferModelConcurrentRunner,
    )
    from mrclient.concurrent.dynamic_subclass import DynamicSubclassModelConcurrentRunner as in_its_module
    from mrclient.results import ModelPredictResult as result_type

    assert POOL_HEADROOM > 0
    assert DynamicSubclassModelConcurrentRunner is mrclient.DynamicSubclassModelConcurrentRunner is in_its_module
    assert TrainInferModelConcurrentRunner is mrclient.TrainInferModelConcurrentRunner
    assert ModelConcurrentRunner is mrclient.ModelConcurrentRunner
    assert ModelPredictResult is mrclient.ModelPredictResult is result_type
