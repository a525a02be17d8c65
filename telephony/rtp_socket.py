"""A non-blocking UDP socket for RTP that records each datagram with its kernel arrival time.

Arrival times come from SO_TIMESTAMPNS (when the packet reached the host), not from when our event loop got
round to reading it: with a CPU-bound bot on the same cores, a userspace stamp would add the caller's own
scheduling delays to the far end's packet gaps. Where the kernel gives no stamp, the read time is used.
"""

from __future__ import annotations

import asyncio
import socket
import struct
import sys
import time

SO_TIMESTAMPNS = 35  # Linux (asm-generic); Python's socket module does not export it
_TIMESPEC = struct.Struct("@qq")
MAX_DATAGRAM = 4096
READS_PER_WAKEUP = 64

Address = tuple[str, int]


class RtpSocket:
    def __init__(self, host: str, port: int) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            self.sock.setblocking(False)
            self.sock.bind((host, port))
        except OSError:
            self.sock.close()
            raise
        self.kernel_timestamps = _enable_kernel_timestamps(self.sock)
        self.received: list[tuple[float, bytes]] = []  # (arrival, monotonic s; datagram)
        self.send_errors = 0
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(self.sock.fileno(), self._read)
        self._closed = False

    @property
    def port(self) -> int:
        return int(self.sock.getsockname()[1])

    def sendto(self, data: bytes, addr: Address) -> None:
        if self._closed:
            return
        try:
            self.sock.sendto(data, addr)
        except OSError:  # full send buffer, or an ICMP error surfacing: a lost packet, as on a real line
            self.send_errors += 1

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._loop.remove_reader(self.sock.fileno())
            self.sock.close()

    def _read(self) -> None:
        now = time.monotonic()
        wall_minus_monotonic = time.time() - now
        for _ in range(READS_PER_WAKEUP):
            try:
                data, ancillary, _, _ = self.sock.recvmsg(MAX_DATAGRAM, 64)
            except OSError:  # BlockingIOError when drained
                return
            self.received.append((_arrival(ancillary, wall_minus_monotonic, now), data))


def _enable_kernel_timestamps(sock: socket.socket) -> bool:
    if not sys.platform.startswith("linux"):
        return False
    try:
        sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
    except OSError:
        return False
    return True


def _arrival(ancillary: list[tuple[int, int, bytes]], wall_minus_monotonic: float, now: float) -> float:
    for level, kind, data in ancillary:
        if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and len(data) >= _TIMESPEC.size:
            seconds, nanoseconds = _TIMESPEC.unpack_from(data)
            return min(now, seconds + nanoseconds / 1e9 - wall_minus_monotonic)
    return now
