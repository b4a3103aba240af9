"""Snapshot record values: the consumers' in-memory form and the `router.v1.Snapshot` wire form.

Aggregators build, and readers and restores consume, plain dicts (`JsonDict`, snake_case, as
the consumers always wrote them); on the topics a value travels as `router.v1.Snapshot`
(protos/router/v1/snapshots.proto), in protobuf binary (`application/protobuf`, the default) or
in its proto3 JSON mapping (`application/json` with the `ce_dataschema` header; camelCase,
enum names, int64 as strings), so data teams get a schema and a version. `to_snapshot` and
`from_snapshot` convert between the two without loss of anything a reader or a restore reads:
summaries a consumer prints in its JSON (rates, quantiles, scores, `cost_usd`) are derived from
the slots, windows and days, and are recomputed by the readers, not carried.

`decode` also reads the consumers' JSON from before this schema (`application/json` without
`ce_dataschema`): records already in a topic stay readable.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal

from google.protobuf import json_format
from google.protobuf.message import DecodeError as ProtobufDecodeError

from router_contract._gen.router.v1 import router_pb2, snapshots_pb2
from router_contract.cost_totals import usd_text
from router_contract.windows import grain_name, parse_rfc3339, rfc3339

JsonDict = dict[str, Any]
SnapshotEncoding = Literal["protobuf", "json"]
SNAPSHOT_ENCODINGS: tuple[SnapshotEncoding, ...] = ("protobuf", "json")

SCHEMA_VERSION = 1
DATASCHEMA = "type.googleapis.com/router.v1.Snapshot"
CONTENT_TYPES: dict[str, str] = {"protobuf": "application/protobuf", "json": "application/json"}
_HEADERS: dict[str, list[tuple[str, bytes]]] = {
    encoding: [("content-type", content_type.encode()), ("ce_dataschema", DATASCHEMA.encode())]
    for encoding, content_type in CONTENT_TYPES.items()
}

# `freshness.phase` in the dict form.
PHASE_LIVE, PHASE_REPLAYING, PHASE_CATCHING_UP = "live", "replaying", "catching_up"
_PHASES = {
    PHASE_LIVE: snapshots_pb2.SNAPSHOT_PHASE_LIVE,
    PHASE_REPLAYING: snapshots_pb2.SNAPSHOT_PHASE_REPLAYING,
    PHASE_CATCHING_UP: snapshots_pb2.SNAPSHOT_PHASE_CATCHING_UP,
}
_PHASE_NAMES = {number: name for name, number in _PHASES.items()}
_GRANULARITIES = {
    "minute": snapshots_pb2.COST_GRANULARITY_MINUTE,
    "hour": snapshots_pb2.COST_GRANULARITY_HOUR,
    "day": snapshots_pb2.COST_GRANULARITY_DAY,
    "week": snapshots_pb2.COST_GRANULARITY_WEEK,
    "month": snapshots_pb2.COST_GRANULARITY_MONTH,
}
_GRANULARITY_NAMES = {number: name for name, number in _GRANULARITIES.items()}
_COST_FIELDS = (  # (dict name, proto field)
    ("requests", "request_count"),
    ("cache_hits", "cache_hit_count"),
    ("cost_nanos_usd", "cost_nanos_usd"),
    ("cost_saved_nanos_usd", "cost_saved_nanos_usd"),
    ("input_tokens", "input_token_count"),
    ("output_tokens", "output_token_count"),
    ("cached_input_tokens", "cached_input_token_count"),
    ("unused_answers", "unused_answer_count"),
    ("unused_cost_nanos_usd", "unused_cost_nanos_usd"),
    ("served_input_tokens", "cache_served_input_token_count"),
    ("served_output_tokens", "cache_served_output_token_count"),
)
_COUNTS = frozenset({"requests", "cache_hits", "unused_answers"})  # JSON numbers; amounts are strings


# What the consumers print in their values but the wire does not carry: summaries of the slots,
# days and windows, which every reader recomputes after merging partitions (readers/). A value
# field neither carried by router.v1.Snapshot nor listed here fails tests/contract.
DERIVED_FIELDS: dict[str, frozenset[str]] = {
    "provider_health": frozenset(
        {
            "attempts",
            "successes",
            "cancelled",
            "errors",
            "request_rate_per_s",
            "error_rate",
            "error_rate_by_class",
            "latency_ms",
            "ttft_ms",
            "health_score",
            "current",  # the "failing now" cap, from `recent` and the watermark (health_score.py)
        }
    ),
    "model_quality": frozenset(
        {"count", "mean_score", "stddev", "ci95_half_width", "confidence", "effective_count"}
    ),
    "cost_rollup": frozenset(),
    "checkpoint": frozenset(),
}


class SnapshotDecodeError(ValueError):
    """The value is not a snapshot this version reads (bad bytes, unknown schema version or kind)."""


# --- the wire ------------------------------------------------------------------------------------


def headers(encoding: SnapshotEncoding) -> list[tuple[str, bytes]]:
    return _HEADERS[encoding]


def encode(value: JsonDict, encoding: SnapshotEncoding = "protobuf") -> bytes:
    message = to_snapshot(value)
    if encoding == "protobuf":
        return message.SerializeToString(deterministic=True)
    return json_format.MessageToJson(message, indent=None, sort_keys=True).encode()


def decode(value: bytes, record_headers: Sequence[tuple[str, bytes]]) -> JsonDict:
    """A record value in the dict form, whichever encoding its headers name."""
    header = dict(record_headers)
    content_type = header.get("content-type", b"application/json")
    try:
        if content_type == b"application/protobuf":
            message = snapshots_pb2.Snapshot.FromString(value)
        elif content_type != b"application/json":
            raise SnapshotDecodeError(f"unsupported content-type {content_type!r}")
        elif header.get("ce_dataschema") == DATASCHEMA.encode():
            message = json_format.Parse(value, snapshots_pb2.Snapshot())
        else:  # the consumers' JSON from before router.v1.Snapshot
            legacy = json.loads(value)
            if not isinstance(legacy, dict):
                raise SnapshotDecodeError("not a snapshot object")
            return legacy
        return from_snapshot(message)
    except SnapshotDecodeError:
        raise
    except (ValueError, KeyError, TypeError, json_format.ParseError, ProtobufDecodeError) as exc:
        raise SnapshotDecodeError(str(exc)) from exc


# --- dict -> message -----------------------------------------------------------------------------


def to_snapshot(value: JsonDict) -> snapshots_pb2.Snapshot:
    """The wire message of a value the consumers built (KeyError/ValueError for a malformed one)."""
    kind = value["kind"]
    source = value["source"]
    message = snapshots_pb2.Snapshot(
        schema_version=SCHEMA_VERSION,
        source=snapshots_pb2.SnapshotSource(
            topic=source["topic"], partition=int(source["partition"]), offset=int(source["offset"])
        ),
    )
    message.generate_time.FromNanoseconds(_nanos(parse_rfc3339(value["generated_at"])))
    _put_freshness(message.freshness, value.get("freshness"))
    if kind == "checkpoint":
        message.checkpoint.replay_from_offset = int(value["replay_from"])
        message.checkpoint.dedupe_max_timestamp_ms = int(value["dedupe"]["max_timestamp_ms"])
        message.checkpoint.dedupe_logged = value["dedupe"].get("logged") is True
        if "resume_from" in value:
            message.checkpoint.resume_from_offset = int(value["resume_from"])
        watermark_s = float(value["state"]["watermark_s"])
        if watermark_s and not message.freshness.HasField("watermark_time"):
            message.freshness.watermark_time.FromNanoseconds(_nanos(watermark_s))
    elif kind == "provider_health":
        _put_health(message.deployment_health, value)
    elif kind == "cost_rollup":
        _put_cost(message.cost, value)
    elif kind == "model_quality":
        _put_quality(message.quality, value)
    else:
        raise ValueError(f"unknown snapshot kind {kind!r}")
    return message


def _put_freshness(out: snapshots_pb2.SnapshotFreshness, freshness: JsonDict | None) -> None:
    if freshness is None:
        out.phase = snapshots_pb2.SNAPSHOT_PHASE_UNSPECIFIED
        return
    out.phase = _PHASES[freshness["phase"]]
    out.lag_count = int(freshness.get("lag_count", 0))
    if freshness.get("watermark_s"):
        out.watermark_time.FromNanoseconds(_nanos(float(freshness["watermark_s"])))


def _put_health(out: snapshots_pb2.DeploymentHealthSnapshot, value: JsonDict) -> None:
    out.provider = value["dimension"]["provider"]
    out.model = value["dimension"]["model"]
    window = value["window"]
    _put_window(out.window, window["start"], window["end"])
    out.window_duration_ms = int(window["seconds"]) * 1000
    out.slot_duration_ms = int(window["slot_seconds"]) * 1000
    for slot in value["slots"]:
        put = out.slots.add(
            attempt_count=int(slot["attempts"]),
            success_count=int(slot["successes"]),
            cancelled_count=int(slot["cancelled"]),
        )
        put.start_time.FromNanoseconds(_nanos(parse_rfc3339(slot["start"])))
        for name, count in sorted(slot["errors"].items()):
            put.errors.add(error_class=_error_class(name), attempt_count=int(count))
        _put_sketch(put.latency, slot["latency_ms"])
        _put_sketch(put.time_to_first_token, slot["ttft_ms"])
    recent = value.get("recent")
    if recent is not None:
        if recent.get("last_success") is not None:
            out.recent.last_success_time.FromNanoseconds(_nanos(parse_rfc3339(recent["last_success"])))
        for text in recent.get("failures", ()):
            out.recent.failure_times.add().FromNanoseconds(_nanos(parse_rfc3339(text)))
        for report in recent.get("breakers", ()):
            put_report = out.recent.breakers.add(router_instance=report["router"])
            put_report.open_time.FromNanoseconds(_nanos(parse_rfc3339(report["opened"])))
            put_report.close_time.FromNanoseconds(_nanos(parse_rfc3339(report["until"])))


def _put_sketch(out: snapshots_pb2.LatencySketch, sketch: JsonDict) -> None:
    out.relative_accuracy = float(sketch["relative_accuracy"])
    out.zero_count = int(sketch["zero_count"])
    for index, count in sketch["bins"].items():
        out.bin_counts[int(index)] = int(count)


def _put_cost(out: snapshots_pb2.CostSnapshot, value: JsonDict) -> None:
    dimension = value["dimension"]
    out.dimension_name = dimension["name"]
    out.dimension_value = dimension["value"]
    out.tag_key = dimension.get("tag_key", "")
    out.model = dimension.get("model", "")
    for name, windows in value["windows"].items():
        unit, _, zone = name.partition("@")  # "day@Europe/Berlin": a zone's calendar day
        group = out.granularities.add(granularity=_GRANULARITIES[unit], time_zone=zone)
        for window in windows:
            put = group.windows.add()
            _put_window(put.window, window["start"], window["end"])
            for key, field in _COST_FIELDS:
                setattr(put.totals, field, int(window.get(key, 0)))
    for period, kept in value.get("rolling", {}).items():
        rolling = out.rolling.add(period=_GRANULARITIES[period], bucket_duration_ms=int(kept["bucket_ms"]))
        for bucket in kept["buckets"]:
            rolling.buckets.add(index=int(bucket["bucket"]), cost_nanos_usd=int(bucket["cost_nanos_usd"]))


def _put_quality(out: snapshots_pb2.QualitySnapshot, value: JsonDict) -> None:
    dimension = value["dimension"]
    out.model = dimension["model"]
    out.task_type = _task_type(dimension["task_type"])
    _put_window(out.window, value["window"]["start"], value["window"]["end"])
    out.max_scorer_share = float(value["max_scorer_share"])
    for day in value["days"]:
        put = out.days.add()
        put.start_time.FromNanoseconds(_nanos(parse_rfc3339(day["start"])))
        scorers = day.get("scorers")
        if scorers is None:  # written before scores had scorers: the day's totals, keyless
            scorers = {"": day}
        for scorer, sums in sorted(scorers.items()):
            put.scorers.add(
                scorer=scorer,
                sums=snapshots_pb2.ScoreSums(
                    score_count=int(sums["count"]),
                    score_sum_micros=int(sums["score_sum_micros"]),
                    score_square_sum_micros2=int(sums["score_sq_sum_micros2"]),
                ),
            )


def _put_window(out: snapshots_pb2.TimeWindow, start: str, end: str) -> None:
    out.start_time.FromNanoseconds(_nanos(parse_rfc3339(start)))
    out.end_time.FromNanoseconds(_nanos(parse_rfc3339(end)))


# --- message -> dict -----------------------------------------------------------------------------


def from_snapshot(message: snapshots_pb2.Snapshot) -> JsonDict:
    """The dict form of a wire message; SnapshotDecodeError for a version or kind this code lacks."""
    if message.schema_version != SCHEMA_VERSION:
        raise SnapshotDecodeError(f"snapshot schema version {message.schema_version} is not {SCHEMA_VERSION}")
    body = message.WhichOneof("body")
    common: JsonDict = {
        "generated_at": rfc3339(_seconds(message.generate_time.ToNanoseconds())),
        "source": {
            "topic": message.source.topic,
            "partition": message.source.partition,
            "offset": message.source.offset,
        },
    }
    freshness = _freshness(message.freshness)
    if freshness is not None:
        common["freshness"] = freshness
    if body == "checkpoint":
        checkpoint = message.checkpoint
        out: JsonDict = {
            "kind": "checkpoint",
            **common,
            "replay_from": checkpoint.replay_from_offset,
            "dedupe": {"max_timestamp_ms": checkpoint.dedupe_max_timestamp_ms},
            "state": {"watermark_s": _watermark_s(message.freshness)},
        }
        if checkpoint.dedupe_logged:
            out["dedupe"]["logged"] = True
        if checkpoint.HasField("resume_from_offset"):
            out["resume_from"] = checkpoint.resume_from_offset
        return out
    if body == "deployment_health":
        return {**_health(message.deployment_health), **common}
    if body == "cost":
        return {**_cost(message.cost), **common}
    if body == "quality":
        return {**_quality(message.quality), **common}
    raise SnapshotDecodeError(f"snapshot without a known body ({body!r})")


def _freshness(freshness: snapshots_pb2.SnapshotFreshness) -> JsonDict | None:
    if freshness.phase == snapshots_pb2.SNAPSHOT_PHASE_UNSPECIFIED:
        return None  # a writer that did not say
    return {
        # A phase this version does not know: not to be taken for a final rollup.
        "phase": _PHASE_NAMES.get(freshness.phase, PHASE_CATCHING_UP),
        "lag_count": freshness.lag_count,
        "watermark_s": _watermark_s(freshness),
    }


def _watermark_s(freshness: snapshots_pb2.SnapshotFreshness) -> float:
    if not freshness.HasField("watermark_time"):
        return 0.0
    return _seconds(freshness.watermark_time.ToNanoseconds())


def _health(health: snapshots_pb2.DeploymentHealthSnapshot) -> JsonDict:
    out = _health_window(health)
    if health.HasField("recent"):
        recent = health.recent
        out["recent"] = {
            "last_success": _time(recent.last_success_time) if recent.HasField("last_success_time") else None,
            "failures": [_time(t) for t in recent.failure_times],
            "breakers": [
                {"router": b.router_instance, "opened": _time(b.open_time), "until": _time(b.close_time)}
                for b in recent.breakers
            ],
        }
    return out


def _health_window(health: snapshots_pb2.DeploymentHealthSnapshot) -> JsonDict:
    return {
        "kind": "provider_health",
        "dimension": {"provider": health.provider, "model": health.model},
        "window": {
            **_window(health.window),
            "seconds": health.window_duration_ms // 1000,
            "slot_seconds": health.slot_duration_ms // 1000,
        },
        "slots": [
            {
                "start": _time(slot.start_time),
                "attempts": slot.attempt_count,
                "successes": slot.success_count,
                "cancelled": slot.cancelled_count,
                "errors": {_error_class_name(e.error_class): e.attempt_count for e in slot.errors},
                "latency_ms": _sketch(slot.latency),
                "ttft_ms": _sketch(slot.time_to_first_token),
            }
            for slot in health.slots
        ],
    }


def _sketch(sketch: snapshots_pb2.LatencySketch) -> JsonDict:
    return {
        "relative_accuracy": sketch.relative_accuracy,
        "zero_count": sketch.zero_count,
        "bins": {str(index): count for index, count in sorted(sketch.bin_counts.items())},
    }


def _cost(cost: snapshots_pb2.CostSnapshot) -> JsonDict:
    dimension: JsonDict = {"name": cost.dimension_name, "value": cost.dimension_value}
    if cost.tag_key:
        dimension["tag_key"] = cost.tag_key
    if cost.model:
        dimension["model"] = cost.model
    out: JsonDict = {
        "kind": "cost_rollup",
        "dimension": dimension,
        "windows": {
            grain_name(_GRANULARITY_NAMES[group.granularity], group.time_zone or "UTC"): [
                _cost_window(w) for w in group.windows
            ]
            for group in cost.granularities
        },
    }
    if cost.rolling:
        out["rolling"] = {
            _GRANULARITY_NAMES[group.period]: {
                "bucket_ms": group.bucket_duration_ms,
                "buckets": [
                    {"bucket": bucket.index, "cost_nanos_usd": str(bucket.cost_nanos_usd)}
                    for bucket in group.buckets
                ],
            }
            for group in cost.rolling
        }
    return out


def _cost_window(window: snapshots_pb2.CostWindow) -> JsonDict:
    out = _window(window.window)
    for key, field in _COST_FIELDS:
        amount = getattr(window.totals, field)
        out[key] = amount if key in _COUNTS else str(amount)
    out["cost_usd"] = usd_text(window.totals.cost_nanos_usd)  # as the consumers print it
    return out


def _quality(quality: snapshots_pb2.QualitySnapshot) -> JsonDict:
    window = _window(quality.window)
    days_s = parse_rfc3339(window["end"]) - parse_rfc3339(window["start"])
    return {
        "kind": "model_quality",
        "dimension": {"model": quality.model, "task_type": _task_type_name(quality.task_type)},
        "window": {**window, "days": round(days_s / 86_400)},
        "max_scorer_share": quality.max_scorer_share,
        "days": [_day(day) for day in quality.days],
    }


def _day(day: snapshots_pb2.QualityDay) -> JsonDict:
    scorers = {s.scorer: _sums(s.sums) for s in day.scorers}
    return {"start": _time(day.start_time), **_total(scorers.values()), "scorers": scorers}


def _sums(sums: snapshots_pb2.ScoreSums) -> JsonDict:
    return {
        "count": sums.score_count,
        "score_sum_micros": str(sums.score_sum_micros),
        "score_sq_sum_micros2": str(sums.score_square_sum_micros2),
    }


def _total(sums: Iterable[Mapping[str, Any]]) -> JsonDict:
    count = total = square = 0
    for item in sums:
        count += int(item["count"])
        total += int(item["score_sum_micros"])
        square += int(item["score_sq_sum_micros2"])
    return {"count": count, "score_sum_micros": str(total), "score_sq_sum_micros2": str(square)}


def _window(window: snapshots_pb2.TimeWindow) -> JsonDict:
    return {"start": _time(window.start_time), "end": _time(window.end_time)}


def _time(timestamp: Any) -> str:
    return rfc3339(_seconds(timestamp.ToNanoseconds()))


# --- enums and time ------------------------------------------------------------------------------


def _error_class(name: str) -> int:
    """ "rate_limited" -> ERROR_CLASS_RATE_LIMITED (as consumers.decode lowercases them)."""
    return int(router_pb2.ErrorClass.Value("ERROR_CLASS_" + name.upper()))


def _error_class_name(number: int) -> str:
    return router_pb2.ErrorClass.Name(number).removeprefix("ERROR_CLASS_").lower()  # type: ignore[arg-type]


def _task_type(name: str) -> router_pb2.TaskType.ValueType:
    return router_pb2.TaskType.Value("TASK_TYPE_" + name.upper())


def _task_type_name(number: int) -> str:
    return router_pb2.TaskType.Name(number).removeprefix("TASK_TYPE_").lower()  # type: ignore[arg-type]


def _nanos(unix_s: float) -> int:
    return round(unix_s * 1e9)


def _seconds(nanos: int) -> float:
    return nanos / 1e9
