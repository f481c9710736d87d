from array import array

ENGINES: tuple[str, ...]

class Sender:
    """One link's outbound SRTP, AEAD_AES_128_GCM (see _srtp_gcm.c)."""

    refused: int
    streams: int
    engine: str
    def __init__(
        self, key: bytes, salt: bytes, window: int, max_streams: int, max_packet: int, engine: str = ""
    ) -> None: ...
    def protect(self, packet: bytes) -> bytes | None: ...

class Receiver:
    """One link's inbound SRTP, AEAD_AES_128_GCM, with libsrtp's replay window (see _srtp_gcm.c)."""

    engine: str
    def __init__(self, key: bytes, salt: bytes, window: int, max_packet: int, engine: str = "") -> None: ...
    def unprotect(self, packet: bytes) -> bytes | None: ...

def protect_many(
    senders: tuple[Sender, ...], packet: bytes, out: bytearray, stride: int, lengths: array[int]
) -> int: ...
