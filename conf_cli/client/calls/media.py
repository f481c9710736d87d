"""A call's media through the meeting pipeline: publishers and receivers over the direct (or relayed) path.

:class:`CallMedia` stands in for the server connection that
:class:`~conf_cli.client.media.manager.MediaManager`
expects. A ``publish`` the pipeline sends is confirmed at once (there is no server to ask); a packet from
an SSRC not seen before starts a receiver for the peer's track, its kind told by the payload type (96:
H.264 video, 111: Opus audio). Packets reach here only once SRTP has authenticated them, so only the peer
can start a track; at most :data:`MAX_TRACKS` are received.
"""

from __future__ import annotations

from collections.abc import Callable

from conf_cli.client.calls.peer import CallSocket
from conf_cli.client.media.manager import MediaManager
from conf_cli.client.media.playback import SinkOpener
from conf_cli.client.media.publisher import PT_H264, PT_OPUS
from conf_cli.client.state import ServerMessage
from conf_cli.errors import ConfError
from conf_cli.plugin.registry import Registry
from conf_cli.plugin.transport import Link
from conf_cli.protocol.control import Message
from conf_cli.protocol.events import ShareStarted
from conf_cli.protocol.rtp import is_rtcp, peek_ssrc

MAX_TRACKS = 8


class _PathLink(Link):
    """The call's path as the media pipeline sees a link: media only, never control."""

    def __init__(self, sock: CallSocket, peer: str) -> None:
        super().__init__(peer=peer)
        self._sock = sock

    def send_control(self, data: bytes) -> None:
        raise ConfError("a call's media path carries no control messages")

    def send_media(self, packet: bytes) -> bool:
        return self._sock.send_media(packet)

    def close(self) -> None:
        self._sock.close()

    @property
    def is_closing(self) -> bool:
        return self._sock.is_closing


class CallMedia:
    """The media client of one call (see the module docstring)."""

    def __init__(
        self,
        registry: Registry,
        me: str,
        peer: str,
        sock: CallSocket,
        notify: Callable[[Message], None],
        open_sinks: SinkOpener | None = None,
    ) -> None:
        self.registry = registry
        self.name: str | None = me
        self.meeting: str | None = None  # a call is no meeting: no SFrame, its path has SRTP of its own
        self.e2ee = False
        self.e2ee_private = None
        self.peer = peer
        self.link: Link | None = _PathLink(sock, peer)
        self.media_handler: Callable[[bytes], None] | None = None
        self.media_arrival: float | None = None  # the path's packets are timed as they are read
        self.manager = MediaManager(self, notify, open_sinks=open_sinks)
        self.ignored = 0
        sock.on_media = self.received

    def send(self, message: Message) -> None:
        """The pipeline's control requests: confirm a publish at once; nothing else needs an answer."""
        if message.get("type") == "publish":
            started = ShareStarted(
                name=self.name or "", kind=message["kind"], ssrc=message["ssrc"], codec=message["codec"]
            )
            self.manager.handle_event(ServerMessage.of(started))

    def received(self, packet: bytes) -> None:
        if not is_rtcp(packet) and len(packet) >= 12:
            ssrc = peek_ssrc(packet)
            if ssrc not in self.manager.receivers:
                payload_type = packet[1] & 0x7F
                kind, codec = {PT_H264: ("video", "H264"), PT_OPUS: ("audio", "opus")}.get(
                    payload_type, ("", "")
                )
                if not kind or len(self.manager.receivers) >= MAX_TRACKS:
                    self.ignored += 1
                    return
                track = ShareStarted(name=self.peer, kind=kind, ssrc=ssrc, codec=codec)
                self.manager.handle_event(ServerMessage.of(track))
        if self.media_handler is not None:
            self.media_handler(packet)

    async def close(self) -> None:
        await self.manager.close()
