from array import array

def send_many(
    fd: int, data: bytes | bytearray, stride: int, lengths: array[int], addresses: tuple[bytes, ...]
) -> int: ...
