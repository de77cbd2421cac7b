"""Monitoring: production traffic against the champion's reference data — input drift, output drift, quality."""

from tunewise.monitor.record import BucketResult, DriftExample, DriftReport, SignalResult, latest_report
from tunewise.monitor.reference import Reference, load_reference
from tunewise.monitor.run import monitor
from tunewise.monitor.traffic import Traffic, TrafficRow, load_traffic

__all__ = [
    "BucketResult",
    "DriftExample",
    "DriftReport",
    "Reference",
    "SignalResult",
    "Traffic",
    "TrafficRow",
    "latest_report",
    "load_reference",
    "load_traffic",
    "monitor",
]
