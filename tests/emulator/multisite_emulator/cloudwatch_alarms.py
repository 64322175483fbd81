"""CloudWatch metric alarms that behave like AWS's: initial state, evaluation, events.

moto 5.2.5 stores alarms but never evaluates them, starts them in ``OK`` and
emits nothing. The DR drill needs the real thing: an alarm that changes state
produces the "CloudWatch Alarm State Change" event that EventBridge delivers
to failover and scaler. This module patches moto's CloudWatch backend, so the
behaviour is the same over rpcv2Cbor (``cloudwatch_rpcv2``), awsJson and
awsQuery:

* ``PutMetricAlarm`` creates an alarm in ``INSUFFICIENT_DATA`` ("Unchecked:
  Initial alarm creation"), without an event (AWS emits on state changes
  only); updating an existing alarm keeps its state, as AWS documents. The
  alarm is then evaluated once, as AWS does after creation.
* ``SetAlarmState`` (moto's validation and update) produces an event when the
  value changes; the same value again produces none.
* ``PutMetricData`` evaluates every alarm on the metrics it wrote (namespace,
  name and the exact dimension set); the control API evaluates all alarms on
  demand, optionally as of another time, to drive missing-data transitions.
* ``DescribeAlarms`` filters by AlarmNames/AlarmNamePrefix, StateValue and
  ActionPrefix together (moto applied only the first), sorts by name and
  pages with MaxRecords/NextToken (moto ignored both).

Evaluation follows "How alarm state is evaluated when data is missing" in the
CloudWatch user guide; see ``judge`` and the README for the exact rule and
its one deviation. Metric math, anomaly detection, percentiles and composite
alarms are not evaluated (their state only changes through SetAlarmState).
"""

from __future__ import annotations

import base64
import binascii
import functools
import json
import math
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Callable

from moto.cloudwatch.exceptions import CloudWatchException, ValidationError
from moto.cloudwatch.models import Alarm, CloudWatchBackend, MetricDatumBase, Statistics, cloudwatch_backends
from moto.cloudwatch.responses import CloudWatchResponse
from moto.core.responses import ActionResult
from moto.core.utils import utcnow

from .state import EmulatorState

OK, ALARM, INSUFFICIENT_DATA = "OK", "ALARM", "INSUFFICIENT_DATA"
INITIAL_REASON = "Unchecked: Initial alarm creation"
EVENT_DETAIL_TYPE = "CloudWatch Alarm State Change"

# ComparisonOperator -> (test, the words AWS uses in the state reason).
COMPARISONS: dict[str, tuple[Callable[[float, float], bool], str]] = {
    "GreaterThanOrEqualToThreshold": (lambda v, t: v >= t, "greater than or equal to"),
    "GreaterThanThreshold": (lambda v, t: v > t, "greater than"),
    "LessThanThreshold": (lambda v, t: v < t, "less than"),
    "LessThanOrEqualToThreshold": (lambda v, t: v <= t, "less than or equal to"),
}
STATISTICS = ("Average", "Sum", "Minimum", "Maximum", "SampleCount")
TREATMENTS = ("missing", "ignore", "breaching", "notBreaching")
# Periods retrieved beyond EvaluationPeriods: the user guide's examples retrieve
# 5 datapoints for a 3-period alarm.
EXTRA_PERIODS = 2
DESCRIBE_PAGE_DEFAULT, DESCRIBE_PAGE_MAX = 50, 100
_TOKEN_MARKER = "multisite-describe-alarms"
# Per-alarm id of the single metric in the event's configuration.metrics: AWS
# generates one for alarms defined by MetricName (the user guide's example has
# "30b6c6b2-..."); it must not change when the alarm is updated.
_METRIC_ID = "multisite_metric_id"

# moto's own methods, captured once so a second install() never wraps a wrapper.
_PUT_METRIC_ALARM = CloudWatchBackend.put_metric_alarm
_SET_ALARM_STATE = CloudWatchBackend.set_alarm_state
_PUT_METRIC_DATA = CloudWatchBackend.put_metric_data


class InvalidNextToken(CloudWatchException):
    code = "InvalidNextToken"


# -- time formats ------------------------------------------------------------------------


def _epoch(moment: datetime) -> float:
    """Epoch seconds of a naive-UTC (moto) or aware datetime."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.timestamp()


def _naive_utc(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, tz=timezone.utc).replace(tzinfo=None)


def _period_start(moment: datetime, period: int) -> int:
    """Epoch start of the period containing ``moment`` (periods align to the epoch)."""
    return math.floor(_epoch(moment) / period) * period


def _whole_ms(moment: datetime) -> datetime:
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


def _millis(moment: datetime) -> str:
    """``2019-10-02T17:04:40.989+0000``: how alarm state timestamps appear in events."""
    return f"{moment:%Y-%m-%dT%H:%M:%S}.{moment.microsecond // 1000:03d}+0000"


# -- what an alarm watches ----------------------------------------------------------------


@dataclass(frozen=True)
class MetricTarget:
    """The one metric an evaluable alarm watches, and how it compares it."""

    namespace: str
    name: str
    dimensions: frozenset[tuple[str, str]]
    unit: str | None
    stat: str
    period: int
    threshold: float
    comparison: str

    def matches(self, datum: MetricDatumBase) -> bool:
        return (
            datum.namespace == self.namespace
            and datum.name == self.name
            and {(d.name, d.value) for d in datum.dimensions} == self.dimensions
            and (self.unit is None or datum.unit == self.unit)
        )

    def breaches(self, value: float) -> bool:
        return COMPARISONS[self.comparison][0](value, self.threshold)


def metric_target(alarm: Alarm) -> MetricTarget | None:
    """The alarm's metric if this module can evaluate the alarm, else None.

    Evaluable: one metric (MetricName/Namespace, or Metrics holding a single
    MetricStat query and no expression), a Statistic among STATISTICS, a
    Threshold and one of the four static ComparisonOperators.
    """
    if alarm.comparison_operator not in COMPARISONS or alarm.threshold is None or not alarm.evaluation_periods:
        return None
    if alarm.metric_data_queries:
        if len(alarm.metric_data_queries) != 1:
            return None
        query = alarm.metric_data_queries[0]
        if query.expression or query.metric_stat is None:
            return None
        stat = query.metric_stat
        metric = stat.metric
        namespace, name, dimensions = metric.namespace, metric.metric_name, metric.dimensions
        statistic, period, unit = stat.stat, stat.period, stat.unit
    else:
        namespace, name, dimensions = alarm.namespace, alarm.metric_name, alarm.dimensions
        statistic, period, unit = alarm.statistic, alarm.period, alarm.unit
    if not (namespace and name and period) or statistic not in STATISTICS:
        return None
    return MetricTarget(
        namespace=namespace,
        name=name,
        dimensions=frozenset((d.name, d.value) for d in dimensions),
        unit=unit,
        stat=statistic,
        period=int(period),
        threshold=float(alarm.threshold),
        comparison=alarm.comparison_operator,
    )


# -- datapoints and the verdict --------------------------------------------------------


@dataclass(frozen=True)
class Datapoint:
    start: datetime  # naive UTC start of the period
    value: float
    samples: float


def period_points(data: list[MetricDatumBase], target: MetricTarget, now: datetime,
                  count: int) -> list[Datapoint | None]:
    """The statistic of each of the last ``count`` periods, oldest first (None: no data).

    Periods are aligned to multiples of Period since the epoch; the last one is
    the period containing ``now``, so a datapoint just put is evaluated at once.
    """
    period = target.period
    current = _period_start(now, period)
    matching = [datum for datum in data if target.matches(datum)]
    points: list[Datapoint | None] = []
    for start in (current - period * back for back in range(count - 1, -1, -1)):
        bucket = [datum for datum in matching if start <= _epoch(datum.timestamp) < start + period]
        points.append(_datapoint(bucket, _naive_utc(start), target.stat) if bucket else None)
    return points


def _datapoint(bucket: list[MetricDatumBase], start: datetime, stat: str) -> Datapoint:
    """Aggregate one period with moto's own Statistics (single values and StatisticSets)."""
    statistics = Statistics([stat], start)
    statistics.metric_data = bucket
    return Datapoint(start, float(statistics.get_statistics_for_type(stat)), float(statistics.calc_sample_count()))


@dataclass(frozen=True)
class Verdict:
    state: str | None  # None: keep the current state (TreatMissingData=ignore)
    evaluated: list[Datapoint]  # the real datapoints evaluated, oldest first
    breaching: int  # breaching datapoints evaluated, filled-in ones included


def judge(points: list[Datapoint | None], periods: int, to_alarm: int, treat: str,
          breaches: Callable[[float], bool]) -> Verdict:
    """The alarm state for ``points`` (the evaluation range, oldest first).

    As the user guide describes: with at least ``periods`` real datapoints
    the most recent ``periods`` of them decide, whatever TreatMissingData says.
    Otherwise ``breaching``/``notBreaching`` fill in the missing ones; ALARM
    when at least ``to_alarm`` (DatapointsToAlarm) evaluated datapoints breach,
    else OK. With ``missing``/``ignore`` the real datapoints decide when they
    can: ALARM if enough of them breach, OK if any of them does not breach,
    and otherwise INSUFFICIENT_DATA (``missing``) or no change (``ignore``).
    """
    existing = [point for point in points if point is not None]
    if len(existing) >= periods:
        window = existing[-periods:]
        breaching = sum(breaches(p.value) for p in window)
        return Verdict(ALARM if breaching >= to_alarm else OK, window, breaching)
    breaching = sum(breaches(p.value) for p in existing)
    if treat in ("breaching", "notBreaching"):
        if treat == "breaching":
            breaching += periods - len(existing)
        return Verdict(ALARM if breaching >= to_alarm else OK, existing, breaching)
    if breaching >= to_alarm:
        return Verdict(ALARM, existing, breaching)
    if breaching < len(existing):
        return Verdict(OK, existing, breaching)
    return Verdict(INSUFFICIENT_DATA if treat == "missing" else None, existing, breaching)


def explain(target: MetricTarget, verdict: Verdict, previous: str, periods: int, to_alarm: int,
            now: datetime) -> tuple[str, str]:
    """StateReason and StateReasonData worded and shaped like AWS's."""
    evaluated = verdict.evaluated
    if verdict.state == INSUFFICIENT_DATA:
        unknown = periods - len(evaluated)
        reason = f"Insufficient Data: {unknown} datapoint{' was' if unknown == 1 else 's were'} unknown."
    else:
        alarming = verdict.state == ALARM
        listed = [p for p in reversed(evaluated) if target.breaches(p.value) == alarming]
        count = verdict.breaching if alarming else periods - verdict.breaching
        needed = to_alarm if alarming else periods - to_alarm + 1
        values = ", ".join(f"{p.value!r} ({p.start:%d/%m/%y %H:%M:%S})" for p in listed)
        reason = (
            f"Threshold Crossed: {count} out of the last {periods} datapoints [{values}] was "
            f"{'' if alarming else 'not '}{COMPARISONS[target.comparison][1]} the threshold "
            f"({target.threshold!r}) (minimum {needed} datapoint{'' if needed == 1 else 's'} "
            f"for {previous} -> {verdict.state} transition)."
        )
    oldest = _period_start(now, target.period) - target.period * (periods - 1)
    first = evaluated[0].start if evaluated else _naive_utc(oldest)
    data = {
        "version": "1.0",
        "queryDate": _millis(now),
        "startDate": _millis(first),
        "statistic": target.stat,
        "period": target.period,
        "recentDatapoints": [p.value for p in evaluated],
        "threshold": target.threshold,
        "evaluatedDatapoints": [
            {"timestamp": _millis(p.start), "sampleCount": p.samples, "value": p.value} for p in reversed(evaluated)
        ],
    }
    return reason, json.dumps(data, separators=(",", ":"))


# -- the EventBridge event ------------------------------------------------------------


@dataclass(frozen=True)
class AlarmState:
    value: str
    reason: str
    reason_data: str | None
    timestamp: datetime

    @classmethod
    def of(cls, alarm: Alarm) -> AlarmState:
        return cls(alarm.state_value, alarm.state_reason, alarm.state_reason_data, alarm.state_updated_timestamp)

    def document(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"value": self.value, "reason": self.reason}
        if self.reason_data is not None:
            doc["reasonData"] = self.reason_data
        doc["timestamp"] = _millis(self.timestamp)
        return doc


def state_change_event(alarm: Alarm, previous: AlarmState, current: AlarmState) -> dict[str, Any]:
    """The event CloudWatch puts on the alarm Region's default bus (user guide,
    "Alarm events and EventBridge", single-metric alarm example)."""
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": EVENT_DETAIL_TYPE,
        "source": "aws.cloudwatch",
        "account": alarm.alarm_arn.split(":")[4],
        "time": f"{current.timestamp:%Y-%m-%dT%H:%M:%S}Z",
        "region": alarm.region_name,
        "resources": [alarm.alarm_arn],
        "detail": {
            "alarmName": alarm.name,
            "state": current.document(),
            "previousState": previous.document(),
            "configuration": _configuration(alarm),
        },
    }


def _configuration(alarm: Alarm) -> dict[str, Any]:
    config: dict[str, Any] = {}
    if alarm.description:
        config["description"] = alarm.description
    if alarm.metric_data_queries:
        config["metrics"] = [_query_document(query) for query in alarm.metric_data_queries]
    else:
        stat = alarm.statistic or alarm.extended_statistic
        config["metrics"] = [
            {
                "id": getattr(alarm, _METRIC_ID, None) or str(uuid.uuid4()),
                "metricStat": _metric_stat(alarm.namespace, alarm.metric_name, alarm.dimensions,
                                           alarm.period, stat, alarm.unit),
                "returnData": True,
            }
        ]
    return config


def _query_document(query: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {"id": query.id}
    if query.expression:
        doc["expression"] = query.expression
    if query.label:
        doc["label"] = query.label
    if query.metric_stat is not None:
        stat = query.metric_stat
        doc["metricStat"] = _metric_stat(stat.metric.namespace, stat.metric.metric_name, stat.metric.dimensions,
                                         stat.period, stat.stat, stat.unit)
    doc["returnData"] = True if query.return_data is None else bool(query.return_data)
    return doc


def _metric_stat(namespace: str, name: str, dimensions: list[Any], period: Any, stat: str | None,
                 unit: str | None) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "metric": {"namespace": namespace, "name": name, "dimensions": {d.name: d.value for d in dimensions}}
    }
    if period is not None:
        doc["period"] = int(period)
    if stat:
        doc["stat"] = stat
    if unit:
        doc["unit"] = unit
    return doc


# -- the feature -------------------------------------------------------------------------


class CloudWatchAlarms:
    """Alarm events of every Region, in order, and the evaluation that produces them."""

    def __init__(self, state: EmulatorState):
        self.state = state
        self.events: list[dict[str, Any]] = []

    # Feature protocol
    def reset(self) -> None:
        self.events.clear()  # moto's reset (in EmulatorState.reset) drops the alarms

    def snapshot(self) -> dict[str, Any]:
        return {"alarm_events": len(self.events)}

    def on_region_up(self, region: str) -> None:
        pass  # alarms keep evaluating through outages: nothing is held

    # state changes (callers hold the state lock)
    def adopt(self, alarm: Alarm, existing: Alarm | None) -> None:
        """Give a just-stored alarm AWS's initial state, or the state of the alarm it replaces."""
        if existing is None:
            alarm.state_value = INSUFFICIENT_DATA
            alarm.state_reason = INITIAL_REASON
            alarm.state_reason_data = None
            alarm.state_updated_timestamp = alarm.configuration_updated_timestamp
            alarm.state_transitioned_timestamp = alarm.configuration_updated_timestamp
            setattr(alarm, _METRIC_ID, str(uuid.uuid4()))
            return
        for attribute in ("state_value", "state_reason", "state_reason_data", "state_updated_timestamp",
                          "state_transitioned_timestamp", "history", _METRIC_ID):
            setattr(alarm, attribute, getattr(existing, attribute, None))

    def record_transition(self, alarm: Alarm, previous: AlarmState) -> None:
        """Emit the event if the alarm's state value changed since ``previous``."""
        if alarm.state_value == previous.value:
            return
        # CloudWatch keeps state times to the millisecond: the event's timestamp and
        # DescribeAlarms' StateTransitionedTimestamp are then the same instant, as on AWS.
        alarm.state_updated_timestamp = _whole_ms(alarm.state_updated_timestamp)
        alarm.state_transitioned_timestamp = alarm.state_updated_timestamp
        self.events.append(state_change_event(alarm, previous, AlarmState.of(alarm)))

    def evaluate(self, backend: CloudWatchBackend, alarm: Alarm, at: datetime) -> bool:
        """Evaluate one alarm as of ``at``; True if its state changed."""
        target = metric_target(alarm)
        if target is None:
            return False
        periods = int(alarm.evaluation_periods)
        to_alarm = min(int(alarm.datapoints_to_alarm or periods), periods)
        treat = alarm.treat_missing_data if alarm.treat_missing_data in TREATMENTS else "missing"
        points = period_points(backend.get_all_metrics(), target, at, periods + EXTRA_PERIODS)
        verdict = judge(points, periods, to_alarm, treat, target.breaches)
        if verdict.state is None or verdict.state == alarm.state_value:
            return False
        previous = AlarmState.of(alarm)
        reason, reason_data = explain(target, verdict, previous.value, periods, to_alarm, at)
        alarm.update_state(reason, reason_data, verdict.state)
        self.record_transition(alarm, previous)
        return True

    # control API
    def events_of(self, region: str | None) -> dict[str, Any]:
        with self.state.lock:
            return {"events": [e for e in self.events if region is None or e["region"] == region]}

    def clear_events(self) -> dict[str, Any]:
        with self.state.lock:
            self.events.clear()
        return {"ok": True}

    def evaluate_all(self, region: str | None, at_epoch: float | None) -> dict[str, Any]:
        """Evaluate every alarm (of one Region) now, or as of ``at_epoch`` seconds."""
        at = utcnow() if at_epoch is None else _naive_utc(at_epoch)
        changed = []
        with self.state.lock:
            backends = [(r, b) for _, r, b in cloudwatch_backends.iter_backends() if region in (None, r)]
            count = 0
            for backend_region, backend in backends:
                for alarm in list(backend.alarms.values()):
                    count += 1
                    previous = alarm.state_value
                    if self.evaluate(backend, alarm, at):
                        changed.append({"region": backend_region, "alarmName": alarm.name,
                                        "previous": previous, "state": alarm.state_value})
        return {"ok": True, "evaluated": count, "changed": changed}


# -- DescribeAlarms --------------------------------------------------------------------


def describe_alarms(response: CloudWatchResponse) -> ActionResult:
    """moto's DescribeAlarms with every filter applied, name order and paging."""
    alarms = sorted(response.cloudwatch_backend.alarms.values(), key=lambda a: a.name)
    names = response._get_param("AlarmNames") or []
    prefix = response._get_param("AlarmNamePrefix")
    state_value = response._get_param("StateValue")
    action_prefix = response._get_param("ActionPrefix")
    alarms = [
        a for a in alarms
        if (not names or a.name in names)
        and (not prefix or a.name.startswith(prefix))
        and (not state_value or a.state_value == state_value)
        and (not action_prefix or any(action.startswith(action_prefix) for action in a.alarm_actions or []))
    ]
    types = response._get_param("AlarmTypes") or ["MetricAlarm"]
    if "MetricAlarm" not in types:
        alarms = []
    page, next_token = _page(alarms, response._get_param("MaxRecords"), response._get_param("NextToken"))
    result: dict[str, Any] = {"MetricAlarms": page, "CompositeAlarms": []}
    if next_token:
        result["NextToken"] = next_token
    return ActionResult(result)


def _page(alarms: list[Alarm], max_records: Any, token: str | None) -> tuple[list[Alarm], str | None]:
    """One page of name-sorted alarms; the token is the (encoded) last name returned,
    so alarms added or deleted between pages neither repeat nor vanish."""
    limit = DESCRIBE_PAGE_DEFAULT if max_records is None else int(max_records)
    if not 1 <= limit <= DESCRIBE_PAGE_MAX:
        bound = "greater than or equal to 1" if limit < 1 else f"less than or equal to {DESCRIBE_PAGE_MAX}"
        raise ValidationError(
            f"1 validation error detected: Value '{limit}' at 'maxRecords' failed to satisfy "
            f"constraint: Member must have value {bound}"
        )
    if token:
        try:
            marker, _, after = base64.urlsafe_b64decode(token.encode()).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError, ValueError):
            marker, after = "", ""
        if marker != _TOKEN_MARKER:
            raise InvalidNextToken("The service couldn't process the NextToken.")
        alarms = [a for a in alarms if a.name > after]
    page = alarms[:limit]
    if len(alarms) <= limit:
        return page, None
    return page, base64.urlsafe_b64encode(f"{_TOKEN_MARKER}:{page[-1].name}".encode()).decode()


# -- installation -------------------------------------------------------------------------


def _dimension_set(dimensions: list[dict[str, str]] | None) -> frozenset[tuple[str | None, str | None]]:
    return frozenset((d.get("Name"), d.get("Value")) for d in dimensions or [])


def install(state: EmulatorState) -> CloudWatchAlarms:
    feature = CloudWatchAlarms(state)

    @functools.wraps(_PUT_METRIC_ALARM)
    def put_metric_alarm(self: CloudWatchBackend, *args: Any, **kwargs: Any) -> Alarm:
        name = kwargs["name"] if "name" in kwargs else args[0]
        with state.lock:
            existing = self.alarms.get(name)
            alarm = _PUT_METRIC_ALARM(self, *args, **kwargs)
            feature.adopt(alarm, existing)
            feature.evaluate(self, alarm, utcnow())
            return alarm

    @functools.wraps(_SET_ALARM_STATE)
    def set_alarm_state(self: CloudWatchBackend, alarm_name: str, reason: str, reason_data: str,
                        state_value: str) -> None:
        with state.lock:
            alarm = self.alarms.get(alarm_name)
            if alarm is None:  # moto raises InvalidFormat or ResourceNotFound, as AWS does
                return _SET_ALARM_STATE(self, alarm_name, reason, reason_data, state_value)
            previous = AlarmState.of(alarm)
            _SET_ALARM_STATE(self, alarm_name, reason, reason_data, state_value)  # validates, may raise
            feature.record_transition(alarm, previous)

    @functools.wraps(_PUT_METRIC_DATA)
    def put_metric_data(self: CloudWatchBackend, namespace: str, metric_data: list[dict[str, Any]]) -> None:
        with state.lock:
            _PUT_METRIC_DATA(self, namespace, metric_data)
            written = {(namespace, d.get("MetricName"), _dimension_set(d.get("Dimensions"))) for d in metric_data}
            now = utcnow()
            for alarm in list(self.alarms.values()):
                target = metric_target(alarm)
                if target is not None and (target.namespace, target.name, target.dimensions) in written:
                    feature.evaluate(self, alarm, now)

    CloudWatchBackend.put_metric_alarm = put_metric_alarm  # type: ignore[method-assign]
    CloudWatchBackend.set_alarm_state = set_alarm_state  # type: ignore[method-assign]
    CloudWatchBackend.put_metric_data = put_metric_data  # type: ignore[method-assign]
    CloudWatchResponse.describe_alarms = describe_alarms  # type: ignore[method-assign]
    return feature


def for_state(state: EmulatorState) -> CloudWatchAlarms:
    """The installed feature (build_app installs it), for the control API."""
    for feature in state.features:
        if isinstance(feature, CloudWatchAlarms):
            return feature
    raise LookupError("cloudwatch_alarms is not installed on this emulator state")
