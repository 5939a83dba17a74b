"""Live values over MQTT with Home Assistant discovery, fed by the logger's own poll.

The logger hands each batch of values, messages and device changes to an ``MqttBridge``
(never waiting on the network); a background task keeps the broker connection and
publishes the latest state. Needs the optional ``aiomqtt`` (``pip install xcomlog[mqtt]``).
"""

from __future__ import annotations

from .bridge import MqttBridge
from .broker_url import BrokerAddress, parse_broker_url
from .settings import MqttSettings
from .writer_tee import MqttWriterTee

__all__ = ["BrokerAddress", "MqttBridge", "MqttSettings", "MqttWriterTee", "parse_broker_url"]
