"""The broker connection: publishing never blocks the caller, reconnects keep the latest state.

``publish()`` only records the payload in a dict keyed by topic (the latest one wins, so
memory is bounded by the number of topics) and marks the topic as due. A background
task connects with aiomqtt, sends what is due, reconnects with backoff when the broker
goes away, and after a reconnect sends every retained topic's latest payload, never a
backlog. Messages that are not retained (command results) wait in a short bounded queue.
"""

from __future__ import annotations

import asyncio
import logging
import random
import ssl
from collections import deque
from collections.abc import Callable, Iterable

from ..exceptions import BrokerError
from .broker_url import BrokerAddress

log = logging.getLogger("xcomlog.mqtt")

#: Reconnect delays: the first and the largest (doubling in between).
BACKOFF_S = (0.5, 30.0)
#: Retained messages queued in paho before the socket must drain.
CHUNK = 512
#: Non-retained messages kept while the broker is away (the oldest are dropped).
TRANSIENT_LIMIT = 256
#: Connack codes that will not get better by retrying.
_FATAL_CONNACK = {
    4: "bad user name or password",
    5: "not authorised (wrong user name or password, or no permission)",
    134: "bad user name or password",
    135: "not authorised (wrong user name or password, or no permission)",
}


def _aiomqtt():
    try:
        import aiomqtt
    except ImportError:  # pragma: no cover - the extra is not installed
        raise BrokerError("MQTT needs the aiomqtt package: pip install 'xcomlog[mqtt]'") from None
    return aiomqtt


def retained_publish_packet(topic: bytes, payload: bytes) -> bytes:
    """An MQTT 5 PUBLISH packet, QoS 0, retain set, no properties; ``topic`` already
    length-prefixed."""
    remaining = len(topic) + 1 + len(payload)
    header = bytearray(b"\x31")  # PUBLISH | RETAIN, QoS 0
    while True:  # remaining length: 7 bits a byte, high bit = more
        byte, remaining = remaining & 0x7F, remaining >> 7
        header.append(byte | 0x80 if remaining else byte)
        if not remaining:
            break
    return bytes(header) + topic + b"\x00" + payload  # b"\x00": no properties


class MqttPublisher:
    """One broker connection with a last will, a latest-state table and subscriptions."""

    def __init__(
        self,
        broker: BrokerAddress,
        *,
        will_topics: Iterable[str] = (),
        client_id: str | None = None,
        subscriptions: Iterable[str] = (),
        on_message: Callable[[str, bytes], None] | None = None,
        on_connect: Callable[[], None] | None = None,
        backoff: tuple[float, float] | None = None,
        keepalive: int = 30,
    ) -> None:
        self.broker = broker
        self.will_topics = tuple(will_topics)
        self.client_id = client_id
        self.subscriptions = list(subscriptions)
        self.on_message = on_message
        self.on_connect = on_connect
        self.backoff = backoff
        self.keepalive = keepalive
        self._retained: dict[str, bytes] = {}  # topic -> latest payload
        self._due: dict[str, None] = {}  # retained topics not yet sent (insertion order)
        self._topic_cache: dict[str, bytes] = {}
        self._transient: deque[tuple[str, bytes]] = deque(maxlen=TRANSIENT_LIMIT)
        self._wake: asyncio.Event | None = None
        self.connected = False
        self.connects = 0
        self.sent = 0
        self.last_error = ""

    # -- the caller's side: never waits ---------------------------------------------------

    def publish(self, topic: str, payload: str | bytes, *, retain: bool = True) -> None:
        """Queue a payload; a retained topic keeps only its latest payload."""
        data = payload.encode() if isinstance(payload, str) else payload
        if retain:
            self._retained[topic] = data
            self._due[topic] = None
        else:
            self._transient.append((topic, data))
        if self._wake is not None:
            self._wake.set()

    def forget(self, topic: str) -> None:
        """Stop re-sending a retained topic after reconnects (after clearing it)."""
        self._retained.pop(topic, None)
        self._due.pop(topic, None)

    @property
    def pending(self) -> int:
        """Payloads waiting to be sent."""
        return len(self._due) + len(self._transient)

    def latest(self, topic: str) -> bytes | None:
        return self._retained.get(topic)

    # -- the connection ---------------------------------------------------------------------

    def _client(self, aiomqtt):
        b = self.broker
        tls = None
        if b.tls:
            tls = ssl.create_default_context(cafile=b.ca_file)
        will = None
        if self.will_topics:
            will = aiomqtt.Will(self.will_topics[0], b"offline", qos=1, retain=True)
        return aiomqtt.Client(
            b.host,
            b.port,
            protocol=aiomqtt.ProtocolVersion.V5,  # for "no local" subscriptions
            username=b.username,
            password=b.password,
            identifier=self.client_id,
            will=will,
            tls_context=tls,
            keepalive=self.keepalive,
            timeout=10,
        )

    def _fatal(self, exc: BaseException) -> BrokerError | None:
        """A BrokerError when ``exc`` is a refusal that retrying will not fix."""
        rc = getattr(exc, "rc", None)
        code = getattr(rc, "value", rc)
        if isinstance(code, int) and code in _FATAL_CONNACK:
            return BrokerError(
                f"MQTT broker {self.broker.url} refused the login: {_FATAL_CONNACK[code]}"
            )
        text = str(exc)
        cause = exc.__cause__ or exc.__context__
        if isinstance(cause, ssl.SSLError) or "SSL" in text or "certificate" in text.lower():
            return BrokerError(f"MQTT broker {self.broker.url}: the TLS handshake failed: {text}")
        return None

    async def check(self, timeout: float = 10.0) -> None:
        """Connect once: BrokerError for bad credentials or a refused TLS handshake.
        A broker that is merely unreachable is not an error (the logger starts anyway)."""
        aiomqtt = _aiomqtt()

        async def connect_once() -> None:
            async with self._client(aiomqtt):
                pass

        try:
            await asyncio.wait_for(connect_once(), timeout)
        except aiomqtt.MqttError as exc:
            fatal = self._fatal(exc)
            if fatal is not None:
                raise fatal from None
            log.warning("MQTT broker %s not reachable yet: %s", self.broker.url, exc)
        except (asyncio.TimeoutError, OSError) as exc:
            log.warning("MQTT broker %s not reachable yet: %s", self.broker.url, exc)

    async def run(self, stop: asyncio.Event) -> None:
        """Keep the connection until ``stop`` is set, then say offline and disconnect."""
        aiomqtt = _aiomqtt()
        self._wake = asyncio.Event()
        first, largest = self.backoff or BACKOFF_S
        delay = first
        while not stop.is_set():
            try:
                async with self._client(aiomqtt) as client:
                    self.connected = True
                    self.connects += 1
                    delay = first
                    log.info("MQTT connected to %s", self.broker.url)
                    await self._session(client, stop)
            except aiomqtt.MqttError as exc:
                self.last_error = str(exc)
                fatal = self._fatal(exc)
                if fatal is not None:
                    log.error("%s", fatal)
                log.info("MQTT %s: %s; retrying in %.1f s", self.broker.url, exc, delay)
            except OSError as exc:
                self.last_error = str(exc)
            finally:
                self.connected = False
            if stop.is_set():
                break
            try:
                await asyncio.wait_for(stop.wait(), delay * random.uniform(0.8, 1.2))
            except asyncio.TimeoutError:
                pass
            delay = min(delay * 2, largest)

    async def _session(self, client, stop: asyncio.Event) -> None:
        # a new connection gets the latest state of every retained topic, nothing older
        self._due = dict.fromkeys(self._retained)
        if self.will_topics:
            for topic in self.will_topics:
                self.publish(topic, "online")
        listener = None
        if self.subscriptions:
            from paho.mqtt.subscribeoptions import SubscribeOptions

            # "no local": our own publications are not echoed back to us (MQTT 5)
            options = SubscribeOptions(qos=1, noLocal=True)
            await client.subscribe([(topic, options) for topic in self.subscriptions])
            listener = asyncio.create_task(self._listen(client))
        if self.on_connect is not None:
            self.on_connect()
        stopper = asyncio.create_task(stop.wait())
        try:
            while True:
                await self._send_due(client)
                if stop.is_set():
                    for topic in self.will_topics:
                        await client.publish(topic, b"offline", qos=1, retain=True)
                    return
                if listener is not None and listener.done():
                    listener.result()  # raises the MqttError that ended it
                    return
                waker = asyncio.create_task(self._wake.wait())
                waits = {waker, stopper} | ({listener} if listener else set())
                await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
                waker.cancel()
                self._wake.clear()
        finally:
            stopper.cancel()
            if listener is not None and not listener.done():
                listener.cancel()

    async def _send_due(self, client) -> None:
        while self._transient or self._due:
            while self._transient:
                topic, data = self._transient[0]
                await client.publish(topic, data, qos=1, retain=False)
                self._transient.popleft()
                self.sent += 1
            # Retained state goes out at QoS 0 as PUBLISH packets we encode ourselves,
            # handed to paho's send queue a chunk at a time as one block: paho's own
            # publish() costs tens of microseconds a message (thread locks, message info)
            # and awaiting each publish a loop turn. The socket drains between chunks.
            paho = client._client  # aiomqtt's paho-mqtt client
            queue = getattr(paho, "_packet_queue", None)
            block = bytearray()
            count = 0
            for topic in list(self._due):
                # taken off first: a newer payload arriving meanwhile makes it due again
                self._due.pop(topic, None)
                data = self._retained.get(topic)
                if data is None:
                    continue
                if queue is None:  # another paho: its publish() does the same, slower
                    info = paho.publish(topic, data, 0, True)
                    if info.rc:
                        raise _aiomqtt().MqttCodeError(info.rc, "Could not publish message")
                else:
                    block += retained_publish_packet(self._topic_bytes(topic), data)
                self.sent += 1
                count += 1
                if count >= CHUNK:
                    if block:
                        queue(0, bytes(block), 0, 0)  # command 0: no publish callbacks
                        block = bytearray()
                    count = 0
                    await self._drain(paho)
            if block:
                queue(0, bytes(block), 0, 0)
            await self._drain(paho)

    def _topic_bytes(self, topic: str) -> bytes:
        """The encoded topic (length + UTF-8) of a retained topic, kept per topic."""
        cached = self._topic_cache.get(topic)
        if cached is None:
            raw = topic.encode()
            cached = self._topic_cache[topic] = len(raw).to_bytes(2, "big") + raw
        return cached

    @staticmethod
    async def _drain(paho) -> None:
        """Let the event loop write what paho queued (waits while the socket is full)."""
        await asyncio.sleep(0)
        for _ in range(1000):
            if not paho.want_write():
                return
            await asyncio.sleep(0.005)
        raise _aiomqtt().MqttError("the broker does not take our messages (5 s)")

    async def _listen(self, client) -> None:
        async for message in client.messages:
            if self.on_message is None:
                continue
            payload = message.payload
            if isinstance(payload, str):
                payload = payload.encode()
            elif payload is None:
                payload = b""
            try:
                self.on_message(str(message.topic), bytes(payload))
            except Exception:  # noqa: BLE001 - a bad command must not end the connection
                log.exception("MQTT: handling %s failed", message.topic)
