"""Byte links to an Xcom-232i: serial port, TCP (both directions) and UDP, blocking and asyncio.

One module per link kind (``serial_port``, ``tcp_client``, ``tcp_listen``, ``udp``), what
they share in ``base`` (the ``Transport`` / ``AsyncTransport`` contracts and the byte
receiver the protocol engine hooks into) and ``streams`` (TCP plumbing), and the URLs in
``url``. Every link has a blocking class and an asyncio twin with the same configuration
(``as_async()``), and is created from a URL by ``open_transport``::

    serial:///dev/ttyUSB0?baud=115200   (also any pyserial URL: rfc2217://, socket://, loop://)
    tcp://192.168.1.10:4001             we connect to a Moxa in TCP server mode
    listen://0.0.0.0:4001?allow=192.168.1.10   the Moxa connects to us (TCP client mode)
    udp://192.168.1.10:4002?reply_port=4001    requests to the gateway, answers on our port
"""

from __future__ import annotations

from .base import DEFAULT_OPEN_TIMEOUT, AsyncTransport, ByteReceiver, Transport
from .serial_port import AsyncSerialTransport, SerialTransport
from .tcp_client import DEFAULT_TCP_PORT, AsyncTcpClientTransport, TcpClientTransport
from .tcp_listen import AsyncTcpServerTransport, TcpServerTransport
from .udp import DEFAULT_UDP_PORT, DEFAULT_UDP_REPLY_PORT, AsyncUdpTransport, UdpTransport
from .url import open_async_transport, open_transport, split_host_port

__all__ = [
    "DEFAULT_OPEN_TIMEOUT",
    "DEFAULT_TCP_PORT",
    "DEFAULT_UDP_PORT",
    "DEFAULT_UDP_REPLY_PORT",
    "AsyncSerialTransport",
    "AsyncTcpClientTransport",
    "AsyncTcpServerTransport",
    "AsyncTransport",
    "AsyncUdpTransport",
    "ByteReceiver",
    "SerialTransport",
    "TcpClientTransport",
    "TcpServerTransport",
    "Transport",
    "UdpTransport",
    "open_async_transport",
    "open_transport",
    "split_host_port",
]
