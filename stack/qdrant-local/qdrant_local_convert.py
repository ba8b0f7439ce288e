"""Qdrant's REST request models (qdrant-client's pydantic models) turned into
qdrant-edge's objects, and qdrant-edge's answers turned back into REST JSON.

Only what a Qdrant server would also accept is converted; a feature the
embedded engine does not offer (sharding, multi-stage prefetch, geo filters,
quantisation settings, vector datatypes other than float32 and float16...) is
refused with Qdrant's 400 "Wrong input" naming it, never silently ignored, so a
caller never gets different results than it asked for.
"""

from __future__ import annotations

import uuid
from typing import Any

import qdrant_edge as edge
from qdrant_client.http import models


class Unsupported(ValueError):
    """A request that is valid for Qdrant but not served by the embedded engine."""

    def __init__(self, what: str) -> None:
        super().__init__(f"{what} is not supported by the embedded engine (qdrant-edge); use a Qdrant server")


DISTANCES = {
    models.Distance.COSINE: edge.Distance.Cosine,
    models.Distance.EUCLID: edge.Distance.Euclid,
    models.Distance.DOT: edge.Distance.Dot,
    models.Distance.MANHATTAN: edge.Distance.Manhattan,
}

SCHEMA_TYPES = {
    "keyword": edge.PayloadSchemaType.Keyword,
    "integer": edge.PayloadSchemaType.Integer,
    "float": edge.PayloadSchemaType.Float,
    "geo": edge.PayloadSchemaType.Geo,
    "text": edge.PayloadSchemaType.Text,
    "bool": edge.PayloadSchemaType.Bool,
    "datetime": edge.PayloadSchemaType.Datetime,
    "uuid": edge.PayloadSchemaType.Uuid,
}

# Index parameter classes by schema type, and the fields copied across (same names on both sides).
INDEX_PARAMS: dict[str, tuple[Any, tuple[str, ...]]] = {
    "keyword": (edge.KeywordIndexParams, ("is_tenant", "on_disk", "enable_hnsw", "prefix")),
    "integer": (edge.IntegerIndexParams, ("lookup", "range", "is_principal", "on_disk", "enable_hnsw")),
    "float": (edge.FloatIndexParams, ("is_principal", "on_disk", "enable_hnsw")),
    "bool": (edge.BoolIndexParams, ("on_disk", "enable_hnsw")),
    "datetime": (edge.DatetimeIndexParams, ("is_principal", "on_disk", "enable_hnsw")),
    "uuid": (edge.UuidIndexParams, ("is_tenant", "on_disk", "enable_hnsw")),
}


# --- collections


# Storage datatypes served. float16 halves the vectors' memory, and the memory store asks for it:
# 100,000 vectors of 384 dimensions take 77 MB instead of 154 MB, and the engine maps its vector
# files twice (a writable and a read-only mapping), so the process's RSS counts them twice.
# uint8 and the turbo* datatypes are refused until a test shows the engine stores them as Qdrant does.
DATATYPES = {
    models.Datatype.FLOAT32: edge.VectorStorageDatatype.Float32,
    models.Datatype.FLOAT16: edge.VectorStorageDatatype.Float16,
}


def vector_params(params: models.VectorParams, where: str) -> edge.EdgeVectorParams:
    if params.multivector_config is not None:
        raise Unsupported(f"{where}.multivector_config")
    if params.quantization_config is not None:
        raise Unsupported(f"{where}.quantization_config")
    if params.datatype is not None and params.datatype not in DATATYPES:
        raise Unsupported(f"{where}.datatype {params.datatype.value}")
    return edge.EdgeVectorParams(
        size=params.size,
        distance=DISTANCES[params.distance],
        on_disk=params.on_disk,
        datatype=DATATYPES[params.datatype] if params.datatype is not None else None,
        # Unless the request says where vectors live: not loaded ahead of use. qdrant-edge maps a
        # segment's vector files twice (writable, read-only), and by default fills both when it opens
        # a shard, which every reopen does (qdrant_local_engine.py); cold, only pages a search or a
        # write touches are resident. Searches read them as fast once touched.
        memory=edge.Memory.Cold if params.on_disk is None else None,
    )


def edge_config(body: models.CreateCollection, search_threads: int | None = None) -> edge.EdgeConfig:
    # One shard, one replica: that is all an in-process engine has.
    for field in ("shard_number", "replication_factor", "write_consistency_factor"):
        if getattr(body, field) not in (None, 1):
            raise Unsupported(field)
    if body.sharding_method not in (None, models.ShardingMethod.AUTO):
        raise Unsupported("sharding_method")
    if body.quantization_config is not None:
        raise Unsupported("quantization_config")
    if body.sparse_vectors:
        raise Unsupported("sparse_vectors")
    vectors: Any
    if isinstance(body.vectors, models.VectorParams):
        vectors = vector_params(body.vectors, "vectors")
    elif isinstance(body.vectors, dict) and body.vectors:
        vectors = {name: vector_params(params, f"vectors.{name}") for name, params in body.vectors.items()}
    else:
        raise ValueError("Wrong input: a collection needs dense vectors")
    hnsw = None
    if body.hnsw_config is not None:
        diff = body.hnsw_config
        # Qdrant's defaults for whatever the diff leaves out.
        hnsw = edge.HnswIndexConfig(
            m=diff.m if diff.m is not None else 16,
            ef_construct=diff.ef_construct if diff.ef_construct is not None else 100,
            full_scan_threshold=diff.full_scan_threshold if diff.full_scan_threshold is not None else 10000,
            on_disk=diff.on_disk,
            payload_m=diff.payload_m,
        )
    return edge.EdgeConfig(
        vectors=vectors, hnsw_config=hnsw, on_disk_payload=body.on_disk_payload, max_search_threads=search_threads
    )


def payload_index_schema(schema: Any) -> Any:
    """A REST ``field_schema`` as qdrant-edge's index type or parameters."""
    if isinstance(schema, models.PayloadSchemaType):
        return SCHEMA_TYPES[schema.value]
    kind = getattr(schema, "type", None)
    kind = kind.value if hasattr(kind, "value") else kind
    if kind not in INDEX_PARAMS:
        raise Unsupported(f"field_schema of type {kind}")
    cls, fields = INDEX_PARAMS[kind]
    return cls(**{field: getattr(schema, field) for field in fields if getattr(schema, field, None) is not None})


def payload_schema_json(info: Any) -> dict[str, Any]:
    """qdrant-edge's payload index info as Qdrant's ``payload_schema`` entry."""
    data_type = next(name for name, kind in SCHEMA_TYPES.items() if kind == info.data_type)
    entry: dict[str, Any] = {"data_type": data_type, "points": info.points}
    if info.params is not None:
        params: dict[str, Any] = {"type": data_type}
        for field in INDEX_PARAMS.get(data_type, (None, ()))[1]:
            value = getattr(info.params, field, None)
            if value is not None:
                params[field] = value
        entry["params"] = params
    return entry


# --- filters


def _match(match: Any) -> Any:
    if isinstance(match, models.MatchValue):
        return edge.MatchValue(match.value)
    if isinstance(match, models.MatchAny):
        return edge.MatchAny(match.any)
    if isinstance(match, models.MatchExcept):
        return edge.MatchExcept(match.except_)
    if isinstance(match, models.MatchText):
        return edge.MatchText(match.text)
    if isinstance(match, models.MatchPhrase):
        return edge.MatchPhrase(match.phrase)
    if isinstance(match, models.MatchTextAny):
        return edge.MatchTextAny(match.text_any)
    raise Unsupported(f"match {type(match).__name__}")


def _range(value: Any) -> Any:
    bounds = {key: getattr(value, key) for key in ("gte", "gt", "lte", "lt")}
    if isinstance(value, models.DatetimeRange):
        return edge.RangeDateTime(**{k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in bounds.items()})
    return edge.RangeFloat(**bounds)


def _field_condition(condition: models.FieldCondition) -> Any:
    if condition.geo_bounding_box or condition.geo_radius or condition.geo_polygon:
        raise Unsupported("geo conditions")
    values_count = None
    if condition.values_count is not None:
        vc = condition.values_count
        values_count = edge.ValuesCount(lt=vc.lt, gt=vc.gt, gte=vc.gte, lte=vc.lte)
    return edge.FieldCondition(
        key=condition.key,
        match=_match(condition.match) if condition.match is not None else None,
        range=_range(condition.range) if condition.range is not None else None,
        values_count=values_count,
        is_empty=condition.is_empty,
        is_null=condition.is_null,
    )


def point_id(value: Any) -> Any:
    # Qdrant ids are unsigned integers or UUIDs; a UUID string is normalised as Qdrant does.
    if isinstance(value, str):
        return uuid.UUID(value)
    return value


def _condition(condition: Any) -> Any:
    if isinstance(condition, models.FieldCondition):
        return _field_condition(condition)
    if isinstance(condition, models.Filter):
        return edge_filter(condition)
    if isinstance(condition, models.IsEmptyCondition):
        return edge.IsEmptyCondition(condition.is_empty.key)
    if isinstance(condition, models.IsNullCondition):
        return edge.IsNullCondition(condition.is_null.key)
    if isinstance(condition, models.HasIdCondition):
        return edge.HasIdCondition({point_id(value) for value in condition.has_id})
    if isinstance(condition, models.HasVectorCondition):
        return edge.HasVectorCondition(condition.has_vector)
    if isinstance(condition, models.NestedCondition):
        return edge.NestedCondition(condition.nested.key, edge_filter(condition.nested.filter))
    raise Unsupported(f"condition {type(condition).__name__}")


def _conditions(value: Any) -> list[Any] | None:
    if value is None:
        return None
    items = value if isinstance(value, list) else [value]
    return [_condition(item) for item in items]


def edge_filter(value: models.Filter | None) -> edge.Filter | None:
    if value is None:
        return None
    min_should = None
    if value.min_should is not None:
        min_should = edge.MinShould(_conditions(value.min_should.conditions) or [], value.min_should.min_count)
    return edge.Filter(
        must=_conditions(value.must),
        should=_conditions(value.should),
        must_not=_conditions(value.must_not),
        min_should=min_should,
    )


# --- selectors and orderings


def with_payload(value: Any, default: bool) -> Any:
    if value is None:
        return default
    if isinstance(value, (bool, list)):
        return value
    if isinstance(value, models.PayloadSelectorInclude):
        return edge.PayloadSelector.Include(value.include)
    if isinstance(value, models.PayloadSelectorExclude):
        return edge.PayloadSelector.Exclude(value.exclude)
    raise Unsupported(f"with_payload {value!r}")


def with_vector(value: Any) -> Any:
    return False if value is None else value


def order_by(value: Any) -> edge.OrderBy | None:
    if value is None:
        return None
    if isinstance(value, str):
        return edge.OrderBy(value)
    direction = None
    if value.direction is not None:
        direction = edge.Direction.Desc if value.direction == models.Direction.DESC else edge.Direction.Asc
    start_from = value.start_from.isoformat() if hasattr(value.start_from, "isoformat") else value.start_from
    return edge.OrderBy(value.key, direction=direction, start_from=start_from)


def search_params(value: models.SearchParams | None) -> edge.SearchParams | None:
    if value is None:
        return None
    return edge.SearchParams(hnsw_ef=value.hnsw_ef, exact=bool(value.exact), indexed_only=bool(value.indexed_only))


def scoring_query(query: Any, using: str | None) -> Any:
    """A REST ``query`` as a qdrant-edge scoring query: nearest to a dense vector, or order by a field."""
    if isinstance(query, models.NearestQuery):
        if query.mmr is not None:
            raise Unsupported("query.nearest with mmr")
        query = query.nearest
    if isinstance(query, models.OrderByQuery):
        return order_by(query.order_by)
    if isinstance(query, list) and all(isinstance(x, (int, float)) for x in query):
        return edge.Query.Nearest([float(x) for x in query], using=using or None)
    raise Unsupported(f"query of type {type(query).__name__}")


# --- points


def points_from_request(operation: models.PointsList | models.PointsBatch) -> list[edge.Point]:
    if isinstance(operation, models.PointsBatch):
        batch = operation.batch
        vectors = batch.vectors
        count = len(batch.ids)
        if isinstance(vectors, list):
            per_point = vectors
        else:  # named vectors: {name: [vector per point]}
            per_point = [{name: values[i] for name, values in vectors.items()} for i in range(count)]
        payloads = batch.payloads or [None] * count
        if len(per_point) != count or len(payloads) != count:
            raise ValueError("Wrong input: batch ids, vectors and payloads differ in length")
        raw = list(zip(batch.ids, per_point, payloads))
    else:
        raw = [(point.id, point.vector, point.payload) for point in operation.points]
    return [edge.Point(point_id(pid), _vector(vector), payload) for pid, vector, payload in raw]


def _vector(vector: Any) -> Any:
    if isinstance(vector, list):
        return [float(x) for x in vector]
    if isinstance(vector, dict):
        return {name: _vector(value) for name, value in vector.items()}
    raise Unsupported(f"vector of type {type(vector).__name__}")


def _json_vector(vector: Any) -> Any:
    # Qdrant answers the unnamed vector as a plain list, named vectors as an object.
    if isinstance(vector, dict) and set(vector) == {""}:
        return vector[""]
    return vector


def _json_id(value: Any) -> Any:
    return str(value) if isinstance(value, uuid.UUID) else value


def record_json(record: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": _json_id(record.id),
        "payload": record.payload,
        "vector": _json_vector(record.vector),
        "shard_key": None,
        "order_value": record.order_value,
    }
    return body


def scored_json(point: Any) -> dict[str, Any]:
    return {
        "id": _json_id(point.id),
        "version": point.version,
        "score": point.score,
        "payload": point.payload,
        "vector": _json_vector(point.vector),
        "shard_key": None,
        "order_value": point.order_value,
    }


def next_offset_json(value: Any) -> Any:
    return _json_id(value)
