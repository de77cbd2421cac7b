"""Monitoring: production traffic against the champion's reference data — input drift, output drift, quality."""

from tunewise.monitor.traffic import Traffic, TrafficRow, load_traffic

__all__ = ["Traffic", "TrafficRow", "load_traffic"]
