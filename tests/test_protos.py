"""The generated code is current, and the protos declare exactly the wire contract (PROTOCOL.md section 2)."""

from __future__ import annotations

import importlib.metadata
import importlib.util
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from google.protobuf.descriptor import FieldDescriptor, FileDescriptor

from conftest import REPO_ROOT, read_pins
from mrclient.wire.proto import commons_pb2, dynamic_subclass_pb2, train_infer_pb2

COMMITTED = REPO_ROOT / "mrclient" / "wire" / "proto"
#: The protoc that writes mrclient/wire/proto: old enough for the oldest supported protobuf.
GRPCIO_TOOLS = read_pins(REPO_ROOT / ".ci" / "pins-oldest.txt")["grpcio-tools"]


def _installed(distribution: str) -> str | None:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def _load_generate() -> ModuleType:
    spec = importlib.util.spec_from_file_location("protos_generate", REPO_ROOT / "protos" / "generate.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_generated_code_is_current(tmp_path: Path) -> None:
    if _installed("grpcio-tools") != GRPCIO_TOOLS:
        pytest.skip(f"needs grpcio-tools=={GRPCIO_TOOLS}: checked in .venv-oldest by make test")
    _load_generate().generate(tmp_path)
    fresh = {path.name for path in tmp_path.iterdir() if path.is_file()}
    committed = {path.name for path in COMMITTED.iterdir() if path.is_file() and not path.name.endswith(".pyc")}
    assert fresh == committed, f"mrclient/wire/proto/ has other files than protos/ generates ({sorted(fresh ^ committed)}): run make protos"
    for name in sorted(fresh):
        assert (tmp_path / name).read_bytes() == (COMMITTED / name).read_bytes(), (
            f"mrclient/wire/proto/{name} is stale: run make protos"
        )


# -- wire identity -------------------------------------------------------------------

_SCALARS = {
    FieldDescriptor.TYPE_STRING: "string",
    FieldDescriptor.TYPE_BYTES: "bytes",
    FieldDescriptor.TYPE_UINT32: "uint32",
}

MESSAGES: dict[str, dict[str, tuple[int, str]]] = {
    "commons.Variant": {"type": (2, "commons.VariantType"), "value": (3, "bytes")},
    "commons.Argument": {"position": (1, "uint32"), "data": (2, "commons.Variant")},
    "commons.KwArgument": {"keyword": (1, "string"), "data": (2, "commons.Variant")},
    "commons.Status": {"code": (1, "string"), "message": (2, "string")},
    "dynamic_subclass.SetupRequest": {
        "className": (1, "string"),
        "instanceArguments": (2, "repeated commons.Argument"),
        "instanceKwArguments": (3, "repeated commons.KwArgument"),
    },
    "dynamic_subclass.SetupResponse": {"status": (1, "commons.Status")},
    "dynamic_subclass.CallRequest": {
        "methodName": (1, "string"),
        "methodArguments": (2, "repeated commons.Argument"),
        "methodKwArguments": (3, "repeated commons.KwArgument"),
    },
    "dynamic_subclass.CallResponse": {"status": (1, "commons.Status"), "methodResponse": (2, "commons.Variant")},
    "dynamic_subclass.RestResponse": {"status": (1, "commons.Status")},
    "train_infer.InferRequest": {"argument": (1, "commons.Variant")},
    "train_infer.InferResponse": {"prediction": (1, "commons.Variant")},
}

_EMPTY = "google.protobuf.Empty"
_TRAIN_INFER_METHODS = {
    "Setup": (_EMPTY, _EMPTY),
    "Infer": ("train_infer.InferRequest", "train_infer.InferResponse"),
    "Reinitialize": (_EMPTY, _EMPTY),
}
SERVICES: dict[str, dict[str, tuple[str, str]]] = {
    "dynamic_subclass.DynamicSubclassService": {
        "Setup": ("dynamic_subclass.SetupRequest", "dynamic_subclass.SetupResponse"),
        "Call": ("dynamic_subclass.CallRequest", "dynamic_subclass.CallResponse"),
        "Rest": (_EMPTY, "dynamic_subclass.RestResponse"),
    },
    "train_infer.TrainInferStreamService": _TRAIN_INFER_METHODS,
    "train_infer.TrainInferService": _TRAIN_INFER_METHODS,
}

FILES: list[tuple[FileDescriptor, str]] = [
    (commons_pb2.DESCRIPTOR, "commons"),
    (dynamic_subclass_pb2.DESCRIPTOR, "dynamic_subclass"),
    (train_infer_pb2.DESCRIPTOR, "train_infer"),
]


def _repeated(field: Any) -> bool:
    is_repeated = getattr(field, "is_repeated", None)  # protobuf 7 has no label any more
    if is_repeated is not None:
        return bool(is_repeated)
    return bool(field.label == FieldDescriptor.LABEL_REPEATED)


def _field_type(field: Any) -> str:
    if field.type == FieldDescriptor.TYPE_MESSAGE:
        name = field.message_type.full_name
    elif field.type == FieldDescriptor.TYPE_ENUM:
        name = field.enum_type.full_name
    else:
        name = _SCALARS.get(field.type, f"type {field.type}")
    return f"repeated {name}" if _repeated(field) else name


@pytest.mark.parametrize(("descriptor", "package"), FILES, ids=[package for _, package in FILES])
def test_file_declares_exactly_the_contract(descriptor: FileDescriptor, package: str) -> None:
    assert descriptor.package == package
    messages = {message.full_name for message in descriptor.message_types_by_name.values()}
    assert messages == {name for name in MESSAGES if name.startswith(f"{package}.")}
    services = {service.full_name for service in descriptor.services_by_name.values()}
    assert services == {name for name in SERVICES if name.startswith(f"{package}.")}


@pytest.mark.parametrize("message_name", sorted(MESSAGES))
def test_message_fields(message_name: str) -> None:
    package, _, name = message_name.partition(".")
    descriptor = {package: file for file, package in FILES}[package].message_types_by_name[name]
    fields = {field.name: (field.number, _field_type(field)) for field in descriptor.fields}
    assert fields == MESSAGES[message_name]


@pytest.mark.parametrize("service_name", sorted(SERVICES))
def test_service_methods(service_name: str) -> None:
    package, _, name = service_name.partition(".")
    service = {package: file for file, package in FILES}[package].services_by_name[name]
    methods = {
        method.name: (method.input_type.full_name, method.output_type.full_name)
        for method in service.methods
        if not (method.client_streaming or method.server_streaming)
    }
    assert methods == SERVICES[service_name]
    assert len(methods) == len(service.methods), "every rpc of the contract is unary"


def test_variant_type_enum() -> None:
    enum = commons_pb2.DESCRIPTOR.enum_types_by_name["VariantType"]
    assert {value.name: value.number for value in enum.values} == {
        "NONE": 0, "DOUBLE": 1, "INT": 2, "STRING": 3, "PARQUET": 4, "ARROW": 5, "JSON": 6,
    }
    assert [name for name in commons_pb2.DESCRIPTOR.enum_types_by_name] == ["VariantType"]
