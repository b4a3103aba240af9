"""Reads the consumers' snapshot topics and keeps the router's fleet view current.

One group-less aiokafka consumer assigned every partition of the three topics, from the
beginning (the newest value per key is the state, as compaction would keep it). New records are
applied at once; besides, a task of its own rebuilds the view every `refresh_interval_s` and hands
it to `on_view`, so staleness and the health window move on while the reader waits on a broker
that does not answer (a broker that is down or a topic that does not exist yet only keeps the view
stale, retried in the background).

`wait_ready` ends once the first read has reached the end offsets the partitions had when it
began (the view built from them is handed to `on_view` first): the router holds its gRPC server
back until then, bounded by `fleet.startup_wait_s`, so a cold instance routes its first request
on what the fleet knows rather than on an empty view (issue 19, item 3). Topics that do not exist
yet hold nothing to wait for.

A partition that brings nothing for half of `stale_after_s` (a live consumer writes at least every
snapshot interval) is checked: if the reader's position is past the partition's end, the broker
lost or reset its log (a restart of the memory-only embedded broker, a crash that lost the tail of
a persisted one, a topic deleted and re-created), and that partition is read again from the
beginning. Without this the reader waited, silently, until the partition grew past its old
position, skipping every record written meanwhile: the view went stale (issue 19, item 5) with
the consumers writing all along. Tansu answers a fetch past the end with no records rather than
OFFSET_OUT_OF_RANGE, so the client's own reset never fires there; on Kafka it does, and
`auto_offset_reset="earliest"` makes it re-read rather than jump to the end.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError

from router_contract import snapshot_records
from router_contract.snapshot_records import JsonDict
from router_service.fleet.config import FleetConfig
from router_service.fleet.metrics import FleetMetrics, default_metrics
from router_service.fleet.view import FleetView, Topic, build_view, stale_topics
from router_service.telemetry.kafka_client import KafkaSecurity

log = logging.getLogger(__name__)

_RETRY_S = 5.0  # between attempts to connect or to find topics that do not exist yet
_POLL_MS = 500
_MIN_REBUILD_GAP_S = 0.1  # a burst of snapshot records spread over several polls builds one view
_FETCH_WAIT_MS = 100  # snapshot topics are small: answer fetches quickly rather than in full batches
_PLAINTEXT = KafkaSecurity()
_DEFAULTS = FleetConfig()


class SnapshotState:
    """The newest value per record key of each topic, and the newest record time per topic."""

    def __init__(self, metrics: FleetMetrics | None = None) -> None:
        self.latest: dict[Topic, dict[str, JsonDict | None]] = {topic: {} for topic in Topic}
        self.newest_s: dict[Topic, float] = {}
        self._metrics = metrics

    def add(
        self,
        topic: Topic,
        key: bytes | None,
        value: bytes | None,
        timestamp_ms: int,
        headers: Sequence[tuple[str, bytes]] = (),
    ) -> None:
        try:
            record_key = key.decode() if key is not None else ""
            decoded = None if value is None else snapshot_records.decode(value, headers)
            if not record_key:
                raise ValueError("not a snapshot record")
        except (UnicodeDecodeError, ValueError):  # SnapshotDecodeError is a ValueError
            if self._metrics is not None:
                self._metrics.decode_errors.labels(topic.value).inc()
            return
        if decoded is None:
            self.latest[topic].pop(record_key, None)  # a tombstone: the dimension expired
        else:
            self.latest[topic][record_key] = decoded
        self.newest_s[topic] = max(self.newest_s.get(topic, 0.0), timestamp_ms / 1000.0)
        if self._metrics is not None:
            self._metrics.records.labels(topic.value).inc()

    def view(self, now_s: float, config: FleetConfig) -> FleetView:
        stale = stale_topics(self.newest_s, now_s, config)
        return build_view(self.latest, stale, now_s, config)


class SnapshotSubscriber:
    def __init__(
        self,
        bootstrap_servers: str,
        config: FleetConfig,
        on_view: Callable[[FleetView], None],
        *,
        security: KafkaSecurity = _PLAINTEXT,
        metrics: FleetMetrics | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._bootstrap = bootstrap_servers
        self._config = config
        self._on_view = on_view
        self._security = security
        self._metrics = metrics or default_metrics()
        self._clock = clock
        self._topics = _topics(config)
        self.state = SnapshotState(self._metrics)
        self._tasks: list[asyncio.Task[None]] = []
        self._ready = asyncio.Event()

    @property
    def ready(self) -> bool:
        """The first read reached the end of the snapshot topics as they were when it began."""
        return self._ready.is_set()

    async def wait_ready(self, timeout_s: float) -> bool:
        """True once `ready` (at once if it is); False if `timeout_s` passed first."""
        try:
            async with asyncio.timeout(timeout_s):
                await self._ready.wait()
        except TimeoutError:
            return False
        return True

    def start(self) -> None:
        self._metrics.ready.set(0)
        self._publish_view()  # all stale until the first records arrive: visible in metrics at once
        self._tasks = [
            asyncio.create_task(self._run(), name="fleet-snapshot-subscriber"),
            asyncio.create_task(self._refresh(), name="fleet-view-refresh"),
        ]

    async def stop(self) -> None:
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _refresh(self) -> None:
        # Apart from the reader: every call it makes can wait on the broker (end offsets, a
        # position after a seek, metadata), and a view rebuilt only between reads froze as it was
        # for a whole broker outage, never stale.
        while True:
            await asyncio.sleep(self._config.refresh_interval_s)
            self._publish_view()

    async def _run(self) -> None:
        while True:
            consumer = AIOKafkaConsumer(
                bootstrap_servers=self._bootstrap,
                group_id=None,
                enable_auto_commit=False,
                client_id="llmrouter-fleet-view",
                fetch_max_wait_ms=_FETCH_WAIT_MS,
                auto_offset_reset="earliest",
                **self._security.client_kwargs(),
            )
            try:
                await consumer.start()
                await self._follow(consumer)
            except KafkaError as exc:
                log.warning("fleet view: snapshot topics unreadable (%r); retrying in %.0fs", exc, _RETRY_S)
            except Exception:
                # A bug must not end the subscription silently: the view would freeze as it is.
                # Retrying keeps the staleness clock running, so a persistent failure shows as stale.
                log.exception("fleet view: subscriber failed; retrying in %.0fs", _RETRY_S)
            finally:
                with contextlib.suppress(Exception):
                    await consumer.stop()
            await asyncio.sleep(_RETRY_S)

    async def _follow(self, consumer: Any) -> None:
        assigned: set[TopicPartition] = set()
        complete = False  # every topic found: no more metadata lookups
        next_discovery = last_build = 0.0
        heard: dict[TopicPartition, float] = {}  # monotonic time of the last record (or of the last check)
        quiet_s = self._config.stale_after_s / 2
        first_read: dict[TopicPartition, int] | None = None  # end offsets to reach before `ready`
        read_to: dict[TopicPartition, int] = {}  # the offset after the last record read
        while True:
            if not complete and time.monotonic() >= next_discovery:
                complete = await self._assign_new(consumer, assigned)
                next_discovery = time.monotonic() + _RETRY_S
                if first_read is None and not self.ready:
                    # Only what exists now: a topic created later is not worth holding a start for.
                    first_read = await _to_read(consumer, assigned)
            changed = False
            if assigned:
                batches = await consumer.getmany(timeout_ms=_POLL_MS)
                arrived = time.monotonic()
                for tp, messages in batches.items():
                    topic = self._topics[tp.topic]
                    for message in messages:
                        self.state.add(topic, message.key, message.value, message.timestamp, message.headers)
                    heard[tp] = arrived
                    if messages:
                        read_to[tp] = max(read_to.get(tp, 0), messages[-1].offset + 1)
                changed = bool(batches)
                quiet = quiet_partitions(assigned, heard, arrived, quiet_s)
                if quiet:
                    await _rewind_past_end(consumer, quiet)
                    heard.update(dict.fromkeys(quiet, time.monotonic()))
            else:
                await asyncio.sleep(_POLL_MS / 1000)
            if first_read is not None and all(read_to.get(tp, 0) >= end for tp, end in first_read.items()):
                first_read = None
                self._publish_view()  # the view of everything read, before anyone is told it is ready
                last_build = time.monotonic()
                self._ready.set()
                self._metrics.ready.set(1)
                log.info("fleet view: snapshot topics read to their end offsets at start")
                continue
            # New records are applied at once (a snapshot arrives in one burst per interval); the
            # periodic rebuild (`_refresh`) only moves staleness and the health window along.
            now = time.monotonic()
            if changed and now >= last_build + _MIN_REBUILD_GAP_S:
                self._publish_view()
                last_build = now

    async def _assign_new(self, consumer: Any, assigned: set[TopicPartition]) -> bool:
        """Assign the partitions of the topics that exist now; True once every topic was found."""
        found = await _existing_partitions(consumer, self._topics)
        missing = sorted(set(self._topics) - {tp.topic for tp in found})
        if missing:
            log.info("fleet view: waiting for snapshot topics %s", ", ".join(missing))
        new = found - assigned
        if new:
            position = {tp: await consumer.position(tp) for tp in assigned}
            consumer.assign(sorted(assigned | new, key=lambda tp: (tp.topic, tp.partition)))
            for tp, offset in position.items():  # assign() forgets positions: go on where we were
                consumer.seek(tp, offset)
            await consumer.seek_to_beginning(*new)
            assigned |= new
        return not missing

    def _publish_view(self) -> None:
        now = self._clock()
        try:
            view = self.state.view(now, self._config)
        except (KeyError, TypeError, ValueError):
            # A record the readers cannot merge (a schema this version does not know): keep the
            # previous view rather than route on a half-built one.
            log.exception("fleet view: cannot build the view from the snapshot records")
            return
        self._on_view(view)
        _report(self._metrics, view, self.state.newest_s, now, self._config)


def quiet_partitions(
    assigned: Iterable[TopicPartition], heard: dict[TopicPartition, float], now: float, quiet_s: float
) -> list[TopicPartition]:
    """Partitions that brought no record (nor were checked) for `quiet_s`; first seen: from now."""
    out = []
    for tp in assigned:
        if now - heard.setdefault(tp, now) >= quiet_s:
            out.append(tp)
    return out


async def _to_read(consumer: Any, partitions: set[TopicPartition]) -> dict[TopicPartition, int]:
    """The end offset of each partition that holds records: the first read is done once the offset
    after the last record read reaches it.

    On Kafka the end offset is the next offset to be written. Tansu reports the base offset of the
    partition's last batch plus one, which the records read pass once the last batch is fetched
    (it comes whole), so the same test holds there. Counted from the records themselves, not from
    `consumer.position()`, which waits (for the broker) while a seek is pending.
    """
    if not partitions:
        return {}
    tps = sorted(partitions)
    starts, ends = await consumer.beginning_offsets(tps), await consumer.end_offsets(tps)
    return {tp: ends[tp] for tp in tps if ends[tp] > starts[tp]}


async def _rewind_past_end(consumer: Any, partitions: list[TopicPartition]) -> None:
    """Read again from the beginning the partitions the reader is positioned past the end of.

    On Tansu the position of a partition read to its end is past the end it reports (the base
    offset of its last batch), so a quiet partition with records is read again too: a snapshot
    topic is small, and reading an old value before the newest one of its key changes nothing.
    """
    ends = await consumer.end_offsets(partitions)
    behind = [tp for tp in partitions if await consumer.position(tp) > ends[tp]]
    if behind:
        log.info("fleet view: re-reading %d snapshot partitions from the beginning", len(behind))
        await consumer.seek_to_beginning(*behind)


async def _existing_partitions(consumer: Any, names: Iterable[str]) -> set[TopicPartition]:
    # Metadata of all topics: a request naming a topic would let a broker with auto-creation on
    # create it. aiokafka's consumer has no public call that returns partitions this way.
    cluster = await consumer._client.fetch_all_metadata()
    return {TopicPartition(n, p) for n in names for p in cluster.partitions_for_topic(n) or ()}


def _topics(config: FleetConfig) -> dict[str, Topic]:
    names = {
        Topic.HEALTH: config.health_topic,
        Topic.QUALITY: config.quality_topic,
        Topic.COSTS: config.costs_topic,
    }
    return {name: topic for topic, name in names.items() if name}


def _report(
    metrics: FleetMetrics, view: FleetView, newest_s: Mapping[Topic, float], now: float, config: FleetConfig
) -> None:
    for topic in Topic:
        metrics.stale.labels(topic.value).set(1 if topic in view.stale else 0)
        if topic in newest_s:
            metrics.age.labels(topic.value).set(max(0.0, now - newest_s[topic]))
        fresh = view.freshness.get(topic)
        if fresh is not None:
            metrics.catching_up.labels(topic.value).set(1 if fresh.catching_up else 0)
            metrics.lag.labels(topic.value).set(fresh.lag_count)
            if fresh.watermark_s is not None:
                metrics.watermark_age.labels(topic.value).set(max(0.0, now - fresh.watermark_s))
    metrics.health_score.clear()
    metrics.traffic_share.clear()
    for key, health in view.health.items():
        metrics.health_score.labels(key).set(health.score)
        metrics.traffic_share.labels(key).set(config.traffic_share(health.score))


async def read_fleet_view(
    bootstrap_servers: str,
    config: FleetConfig = _DEFAULTS,
    *,
    security: KafkaSecurity = _PLAINTEXT,
    timeout_s: float = 10.0,
) -> FleetView:
    """The fleet view now, read once to the end of the snapshot topics (for `routerctl`)."""
    state = SnapshotState()
    names = _topics(config)
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap_servers,
        group_id=None,
        enable_auto_commit=False,
        client_id="routerctl",
        **security.client_kwargs(),
    )
    await consumer.start()
    try:
        tps = sorted(await _existing_partitions(consumer, names), key=lambda tp: (tp.topic, tp.partition))
        if tps:
            consumer.assign(tps)
            await consumer.seek_to_beginning(*tps)
            async with asyncio.timeout(timeout_s):
                await _drain(consumer, tps, names, state)
    finally:
        await consumer.stop()
    return state.view(time.time(), config)


async def _drain(
    consumer: Any, tps: Iterable[TopicPartition], names: Mapping[str, Topic], state: SnapshotState
) -> None:
    end = await consumer.end_offsets(list(tps))
    while True:
        # Tansu reports the base offset of a partition's last batch as its end offset: once past
        # what it reported, stop at the first poll that brings nothing.
        past = all([await consumer.position(tp) >= offset for tp, offset in end.items()])
        batches = await consumer.getmany(timeout_ms=200 if past else _POLL_MS)
        for tp, messages in batches.items():
            for message in messages:
                state.add(names[tp.topic], message.key, message.value, message.timestamp, message.headers)
        if past and not batches:
            return
