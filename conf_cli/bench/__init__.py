"""``conf bench``: load a conf server with synthetic RTP and measure what it forwards.

Publishers send RTP packets whose payload starts with the send time; subscribers (and publishers, which
receive each other's media too) record arrival time, sequence numbers and sizes. Everything runs on one
host, so the monotonic clock is shared and one-way latency is the difference of two readings.
"""
