"""Session descriptions (SDP, RFC 4566), sans-I/O: what RTSP's DESCRIBE answers and ANNOUNCE carries.

:class:`SessionDescription` holds the session-level lines conf needs (origin, name, connection, attributes)
and one :class:`MediaDescription` per stream (its media type, port, protocol, payload formats and
attributes, ``rtpmap``, ``fmtp`` and ``control`` among them). ``SessionDescription.parse(text)`` reads one;
``str(description)`` writes one with CRLF line ends. Lines the model does not keep (``i=``, ``b=``,
``k=`` ...) are skipped when reading. Bad input raises :class:`~conf_cli.errors.ProtocolError`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from conf_cli.errors import ProtocolError

__all__ = ["MAX_MEDIA", "MAX_SDP_BYTES", "MediaDescription", "RtpMap", "SessionDescription"]

MAX_SDP_BYTES = 65_536
MAX_LINES = 1024
MAX_MEDIA = 16

Attribute = tuple[str, str | None]


@dataclass
class RtpMap:
    """An ``a=rtpmap`` line: payload type, encoding name, clock rate and (audio) channels."""

    payload_type: int
    encoding: str
    clock_rate: int
    channels: int | None = None


def _attribute(attributes: list[Attribute], name: str) -> str | None:
    for key, value in attributes:
        if key == name:
            return value if value is not None else ""
    return None


def _attribute_lines(attributes: list[Attribute]) -> list[str]:
    return [f"a={k}" if v is None else f"a={k}:{v}" for k, v in attributes]


@dataclass
class MediaDescription:
    """One ``m=`` section."""

    media: str
    port: int
    proto: str
    formats: list[str]
    attributes: list[Attribute] = field(default_factory=list)
    connection: str | None = None

    def attribute(self, name: str) -> str | None:
        """The value of the first ``a=name`` (``""`` for a flag), or ``None``."""
        return _attribute(self.attributes, name)

    @property
    def control(self) -> str | None:
        return self.attribute("control")

    def rtpmap(self) -> RtpMap | None:
        """The ``rtpmap`` of the first payload format (or, for a static type, what it implies)."""
        if not self.formats:
            return None
        first = self.formats[0]
        for key, value in self.attributes:
            if key != "rtpmap" or value is None:
                continue
            number, _, spec = value.partition(" ")
            if number != first:
                continue
            parts = spec.strip().split("/")
            try:
                return RtpMap(
                    int(number),
                    parts[0],
                    int(parts[1]) if len(parts) > 1 else 90_000,
                    int(parts[2]) if len(parts) > 2 else None,
                )
            except ValueError:
                raise ProtocolError(f"bad rtpmap {value[:60]!r}") from None
        static = {"0": ("PCMU", 8000), "8": ("PCMA", 8000), "26": ("JPEG", 90_000), "14": ("MPA", 90_000)}
        if first in static:
            return RtpMap(int(first), *static[first])
        return None

    def fmtp(self) -> dict[str, str]:
        """The parameters of the first payload format's ``fmtp``, by lower-case name."""
        for key, value in self.attributes:
            if key == "fmtp" and value is not None:
                number, _, params = value.partition(" ")
                if self.formats and number == self.formats[0]:
                    result: dict[str, str] = {}
                    for param in params.split(";"):
                        name, _, arg = param.strip().partition("=")
                        if name:
                            result[name.lower()] = arg
                    return result
        return {}

    def lines(self) -> list[str]:
        out = [f"m={self.media} {self.port} {self.proto} {' '.join(self.formats)}"]
        if self.connection is not None:
            out.append(f"c={self.connection}")
        return out + _attribute_lines(self.attributes)


@dataclass
class SessionDescription:
    """A whole SDP."""

    origin: str = "- 0 0 IN IP4 127.0.0.1"
    name: str = "-"
    connection: str | None = None
    timing: str = "0 0"
    attributes: list[Attribute] = field(default_factory=list)
    media: list[MediaDescription] = field(default_factory=list)

    def attribute(self, name: str) -> str | None:
        return _attribute(self.attributes, name)

    def __str__(self) -> str:
        lines = ["v=0", f"o={self.origin}", f"s={self.name or '-'}"]
        if self.connection is not None:
            lines.append(f"c={self.connection}")
        lines.append(f"t={self.timing}")
        lines += _attribute_lines(self.attributes)
        for media in self.media:
            lines += media.lines()
        for line in lines:
            if "\r" in line or "\n" in line:
                raise ValueError(f"SDP line holds a line break: {line[:60]!r}")
        return "\r\n".join(lines) + "\r\n"

    @classmethod
    def parse(cls, data: bytes | str) -> SessionDescription:
        if len(data) > MAX_SDP_BYTES:
            raise ProtocolError(f"SDP longer than {MAX_SDP_BYTES} bytes")
        if isinstance(data, bytes):
            try:
                data = data.decode("utf-8")
            except UnicodeDecodeError:
                raise ProtocolError("SDP is not UTF-8") from None
        lines = [line.rstrip("\r") for line in data.split("\n")]
        lines = [line for line in lines if line.strip()]
        if len(lines) > MAX_LINES:
            raise ProtocolError(f"SDP has more than {MAX_LINES} lines")
        if not lines or lines[0].strip() != "v=0":
            raise ProtocolError("SDP does not start with v=0")
        session = cls(origin="", name="")
        current: MediaDescription | None = None
        for line in lines[1:]:
            if len(line) < 2 or line[1] != "=" or not line[0].isalpha():
                raise ProtocolError(f"malformed SDP line {line[:60]!r}")
            kind, value = line[0], line[2:]
            if kind == "m":
                if len(session.media) >= MAX_MEDIA:
                    raise ProtocolError(f"SDP has more than {MAX_MEDIA} media sections")
                current = _media(value)
                session.media.append(current)
            elif kind == "a":
                name, colon, arg = value.partition(":")
                attribute: Attribute = (name.strip(), arg.strip() if colon else None)
                (current.attributes if current else session.attributes).append(attribute)
            elif kind == "c":
                if current is None:
                    session.connection = value.strip()
                else:
                    current.connection = value.strip()
            elif current is None:
                if kind == "o":
                    session.origin = value.strip()
                elif kind == "s":
                    session.name = value.strip()
                elif kind == "t":
                    session.timing = value.strip()
        return session


def _media(value: str) -> MediaDescription:
    parts = value.split()
    if len(parts) < 3:
        raise ProtocolError(f"malformed SDP media line {value[:60]!r}")
    port_text = parts[1].partition("/")[0]
    if not port_text.isascii() or not port_text.isdigit() or int(port_text) > 65535:
        raise ProtocolError(f"bad port in SDP media line {value[:60]!r}")
    return MediaDescription(parts[0], int(port_text), parts[2], parts[3:])
