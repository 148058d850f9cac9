#!/usr/bin/env python3
"""
Fixed one-way delay for test links where the kernel has no netem (test/support/netns.ts starts this).

Packets that iptables sends to NFQUEUE queue N (`-j NFQUEUE --queue-num N`) stay in the kernel; only their metadata
(no payload: NFQNL_COPY_META) comes up here. Each is accepted once DELAY ms have passed since it was queued, with one
batch verdict (NFQNL_MSG_VERDICT_BATCH: "accept every packet of this queue up to id X") per due group, so a packet
costs one recv and a share of one send. Order within a queue is kept (FIFO, one delay per queue).

    linkDelay.py QUEUE:DELAY_MS [QUEUE:DELAY_MS ...]

Prints `ready` once every queue is bound, then runs until SIGTERM/SIGINT or its parent dies (PR_SET_PDEATHSIG).
Plain netlink from the standard library: no libnetfilter_queue.
"""
import collections
import ctypes
import os
import select
import signal
import socket
import struct
import sys
import time

NETLINK_NETFILTER = 12
SOL_NETLINK = 270
NETLINK_NO_ENOBUFS = 5
SO_RCVBUFFORCE = 33
NFNL_SUBSYS_QUEUE = 3
NFQNL_MSG_PACKET = 0
NFQNL_MSG_CONFIG = 2
NFQNL_MSG_VERDICT_BATCH = 3
NFQA_PACKET_HDR = 1
NFQA_VERDICT_HDR = 2
NFQA_CFG_CMD = 1
NFQA_CFG_PARAMS = 2
NFQA_CFG_QUEUE_MAXLEN = 3
NFQNL_CFG_CMD_BIND = 1
NFQNL_COPY_META = 1
NF_ACCEPT = 1
NLM_F_REQUEST = 1
NLM_F_ACK = 4
NLMSG_ERROR = 2
PACKET_TYPE = (NFNL_SUBSYS_QUEUE << 8) | NFQNL_MSG_PACKET
MAXLEN = 200000  # packets held per queue: 200 ms of a 1 GB/s link in 1500-byte packets


def attr(kind, payload):
    length = 4 + len(payload)
    return struct.pack('=HH', length, kind) + payload + b'\0' * ((4 - length % 4) % 4)


def message(msg, queue, attrs, flags=NLM_F_REQUEST):
    body = struct.pack('=BBH', socket.AF_UNSPEC, 0, socket.htons(queue)) + b''.join(attrs)
    return struct.pack('=IHHII', 16 + len(body), (NFNL_SUBSYS_QUEUE << 8) | msg, flags, 0, 0) + body


def configure(sock, queue):
    sock.send(message(NFQNL_MSG_CONFIG, queue, [attr(NFQA_CFG_CMD, struct.pack('!BxH', NFQNL_CFG_CMD_BIND, socket.AF_INET))], NLM_F_REQUEST | NLM_F_ACK))
    expect_ack(sock, f'bind queue {queue}')
    sock.send(
        message(
            NFQNL_MSG_CONFIG,
            queue,
            [attr(NFQA_CFG_PARAMS, struct.pack('!IB', 0, NFQNL_COPY_META)), attr(NFQA_CFG_QUEUE_MAXLEN, struct.pack('!I', MAXLEN))],
            NLM_F_REQUEST | NLM_F_ACK,
        )
    )
    expect_ack(sock, f'configure queue {queue}')


def expect_ack(sock, what):
    data = sock.recv(65536)
    length, kind = struct.unpack_from('=IH', data, 0)
    if kind == NLMSG_ERROR:
        (error,) = struct.unpack_from('=i', data, 16)
        if error != 0:
            raise OSError(-error, f'{what}: {os.strerror(-error)}')


def packets(data):
    """(queue, packet id) of every NFQNL_MSG_PACKET in one recv."""
    offset = 0
    while offset + 16 <= len(data):
        length, kind = struct.unpack_from('=IH', data, offset)
        if length < 16:
            return
        if kind == PACKET_TYPE:
            (queue,) = struct.unpack_from('!H', data, offset + 18)
            pos = offset + 20
            end = offset + length
            while pos + 4 <= end:
                alen, akind = struct.unpack_from('=HH', data, pos)
                if alen < 4:
                    break
                if akind & 0x7FFF == NFQA_PACKET_HDR:
                    (packet_id,) = struct.unpack_from('!I', data, pos + 4)
                    yield queue, packet_id
                    break
                pos += (alen + 3) & ~3
        offset += (length + 3) & ~3


def main():
    delays = {}
    for spec in sys.argv[1:]:
        queue, delay = spec.split(':')
        delays[int(queue)] = float(delay) / 1000.0
    if not delays:
        sys.exit('usage: linkDelay.py QUEUE:DELAY_MS ...')
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG: go when the test process goes
    if os.getppid() == 1:
        sys.exit(0)

    def leave(*_):
        sys.exit(0)

    signal.signal(signal.SIGTERM, leave)
    signal.signal(signal.SIGINT, leave)

    sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER)
    sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, 64 * 1024 * 1024)
    sock.setsockopt(SOL_NETLINK, NETLINK_NO_ENOBUFS, 1)
    sock.bind((0, 0))
    for queue in delays:
        configure(sock, queue)
    sock.setblocking(False)
    pending = {queue: collections.deque() for queue in delays}
    rfds = [sock]
    print('ready', flush=True)

    recv = sock.recv
    monotonic = time.monotonic
    while True:
        now = monotonic()
        due = min((q[0][0] for q in pending.values() if q), default=None)
        # select: microsecond timeouts (poll's are whole milliseconds, rounded up)
        select.select(rfds, [], [], None if due is None else max(0.0, due - now))
        now = monotonic()
        for _ in range(10000):
            try:
                data = recv(262144)
            except BlockingIOError:
                break
            except InterruptedError:
                continue
            for queue, packet_id in packets(data):
                q = pending.get(queue)
                if q is not None:
                    q.append((now + delays[queue], packet_id))
        now = monotonic()
        for queue, q in pending.items():
            last = None
            while q and q[0][0] <= now:
                last = q.popleft()[1]
            if last is not None:
                verdict = attr(NFQA_VERDICT_HDR, struct.pack('!II', NF_ACCEPT, last))
                while True:
                    try:
                        sock.send(message(NFQNL_MSG_VERDICT_BATCH, queue, [verdict]))
                        break
                    except (BlockingIOError, InterruptedError):
                        select.select([], [sock], [], 0.01)


if __name__ == '__main__':
    main()
