"""Just enough of Kubernetes' protobuf encoding to read a SelfSubjectAccessReview.

kubectl 1.33's typed clients send protobuf bodies (`application/vnd.kubernetes.protobuf`) with no JSON
fallback; `kubectl auth can-i` is the one such request the sandbox must understand. The body is the magic
`k8s\\0` then a runtime.Unknown message {1: TypeMeta {1: apiVersion, 2: kind}, 2: raw object bytes}.
"""

from __future__ import annotations

MAGIC = b"k8s\x00"
PROTOBUF = "application/vnd.kubernetes.protobuf"
# Field numbers in k8s.io/api/authorization/v1/generated.proto.
_RESOURCE_ATTRIBUTES = {1: "namespace", 2: "verb", 3: "group", 4: "version", 5: "resource", 6: "subresource",
                        7: "name"}
_NON_RESOURCE_ATTRIBUTES = {1: "path", 2: "verb"}


class ProtobufError(ValueError):
    pass


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if pos >= len(data):
            raise ProtobufError("truncated varint")
        byte = data[pos]
        value |= (byte & 0x7F) << shift
        pos += 1
        if not byte & 0x80:
            return value, pos
        shift += 7


def fields(data: bytes) -> dict[int, list[bytes | int]]:
    """The top-level fields of a message: number -> values (bytes for length-delimited, int for varints)."""
    result: dict[int, list[bytes | int]] = {}
    pos = 0
    while pos < len(data):
        key, pos = _varint(data, pos)
        number, wire_type = key >> 3, key & 7
        if wire_type == 0:
            value, pos = _varint(data, pos)
        elif wire_type == 2:
            length, pos = _varint(data, pos)
            value, pos = data[pos:pos + length], pos + length
        elif wire_type in (1, 5):
            size = 8 if wire_type == 1 else 4
            value, pos = data[pos:pos + size], pos + size
        else:
            raise ProtobufError(f"unsupported wire type {wire_type}")
        result.setdefault(number, []).append(value)
    return result


def _strings(message: bytes, names: dict[int, str]) -> dict[str, str]:
    parsed = fields(message)
    return {name: parsed[number][0].decode() for number, name in names.items() if number in parsed}


def decode_access_review(body: bytes) -> dict:
    """A protobuf SelfSubjectAccessReview as its JSON form (spec only)."""
    if not body.startswith(MAGIC):
        raise ProtobufError("not a Kubernetes protobuf message")
    unknown = fields(body[len(MAGIC):])
    type_meta = fields(unknown.get(1, [b""])[0])
    kind = type_meta.get(2, [b""])[0].decode()
    if kind != "SelfSubjectAccessReview":
        raise ProtobufError(f"protobuf bodies are understood for SelfSubjectAccessReview only, not {kind!r}")
    review = fields(unknown.get(2, [b""])[0])
    spec_fields = fields(review.get(2, [b""])[0])
    spec = {}
    if 1 in spec_fields:
        spec["resourceAttributes"] = _strings(spec_fields[1][0], _RESOURCE_ATTRIBUTES)
    if 2 in spec_fields:
        spec["nonResourceAttributes"] = _strings(spec_fields[2][0], _NON_RESOURCE_ATTRIBUTES)
    return {"apiVersion": type_meta.get(1, [b""])[0].decode(), "kind": kind, "metadata": {}, "spec": spec}
