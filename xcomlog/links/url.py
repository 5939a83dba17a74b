"""Link URLs: ``open_transport`` turns ``serial://``, ``tcp://``, ``listen://`` or ``udp://`` into a link.

serial:///dev/ttyUSB0?baud=115200   (also any pyserial URL: rfc2217://, socket://, loop://)
tcp://192.168.1.10:4001             we connect to a Moxa in TCP server mode
listen://0.0.0.0:4001?allow=192.168.1.10   the Moxa connects to us (TCP client mode)
udp://192.168.1.10:4002?reply_port=4001    requests to the gateway, answers on our port
udp://192.168.1.10:4002?answer_port=any     ... accepted from any port of the gateway's host
"""

from __future__ import annotations

from urllib.parse import parse_qs, unquote, urlsplit

from ..protocol import DEFAULT_BAUDRATE
from .base import AsyncTransport, Transport
from .serial_port import SerialTransport
from .tcp_client import DEFAULT_TCP_PORT, TcpClientTransport
from .tcp_listen import TcpServerTransport
from .udp import DEFAULT_UDP_PORT, DEFAULT_UDP_REPLY_PORT, UdpTransport, parse_answer_port


def split_host_port(text: str) -> tuple[str, str]:
    """``HOST:PORT``, ``[IPv6]:PORT``, ``[IPv6]`` or ``HOST`` -> (host, port text).

    The port text is ``""`` when there is none and the brackets of an IPv6 host are
    removed; the callers (URLs here, the CLI's options) check the port their own way.
    """
    text = text.strip()
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        return host, rest.lstrip(":")
    host, sep, port_text = text.rpartition(":")
    return (host, port_text) if sep else (text, "")


def _split_host_port(netloc: str, default_port: int | None, what: str) -> tuple[str, int]:
    host, port_text = split_host_port(netloc)
    if port_text:
        try:
            port = int(port_text)
        except ValueError:
            raise ValueError(f"invalid port {port_text!r} in {what}") from None
    elif default_port is None:
        raise ValueError(f"{what} needs a port (HOST:PORT)")
    else:
        port = default_port
    if not 0 <= port <= 65535:
        raise ValueError(f"port {port} out of range in {what}")
    return host, port


def open_transport(url: str) -> Transport:
    """Create (not yet connect) the blocking transport a URL describes.

    ``serial:///dev/ttyUSB0?baud=115200``, ``/dev/ttyUSB0``, ``rfc2217://host:port``,
    ``socket://host:port`` and other pyserial URLs, ``tcp://HOST:PORT``,
    ``listen://[HOST]:PORT?allow=IP,IP``,
    ``udp://HOST[:PORT]?reply_port=N&bind=IP&answer_port=any|N``.
    Every part is checked first with the rules of the CLI and the TOML file
    (``logger.config.check_link_url``): a ConfigError (a ValueError) names the mistake.
    """
    text = url.strip()
    if not text:
        raise ValueError("empty transport URL")
    # Imported here: xcomlog.logger imports this package (no cycle at import time).
    from ..logger.config import check_link_url

    check_link_url(text, "transport URL")
    if "://" not in text:
        return SerialTransport(text)
    parts = urlsplit(text)
    scheme = parts.scheme.lower()
    query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
    if scheme == "serial":
        # Everything after serial:// is the device (a path or a pyserial URL); only a
        # trailing ?baud=N is ours.
        rest = text[len("serial://") :]
        baud = DEFAULT_BAUDRATE
        head, sep, tail = rest.rpartition("?")
        if sep and tail.startswith(("baud=", "baudrate=")):
            rest = head
            try:
                baud = int(tail.partition("=")[2])
            except ValueError:
                raise ValueError(f"invalid baud rate in {url}") from None
        if not rest:
            raise ValueError(f"{url}: serial:// needs a device path or URL")
        return SerialTransport(unquote(rest), baud)
    if scheme == "tcp":
        host, port = _split_host_port(parts.netloc, DEFAULT_TCP_PORT, url)
        if not host:
            raise ValueError(f"{url}: tcp:// needs a host")
        return TcpClientTransport(host, port)
    if scheme == "listen":
        host, port = _split_host_port(parts.netloc, DEFAULT_TCP_PORT, url)
        return TcpServerTransport(host or "0.0.0.0", port, allow=query.get("allow"))
    if scheme == "udp":
        host, port = _split_host_port(parts.netloc, DEFAULT_UDP_PORT, url)
        if not host:
            raise ValueError(f"{url}: udp:// needs the gateway's host")
        reply = int(query.get("reply_port", DEFAULT_UDP_REPLY_PORT))
        return UdpTransport(
            host,
            port,
            reply_port=reply,
            bind_host=query.get("bind", ""),
            answer_port=parse_answer_port(query.get("answer_port")),
        )
    # Any other scheme is a pyserial URL handler (rfc2217://, socket://, loop://, spy://...).
    return SerialTransport(text)


def open_async_transport(url: str) -> AsyncTransport:
    """The asyncio transport a URL describes (see ``open_transport``)."""
    return open_transport(url).as_async()
