"""bench_python: the Python peer (sagepeer) sending to a C++ sage node over TCP, beside the floor for
Python: a minimal raw-socket loop that does the same framing and FlatBuffer encoding by hand, in
the same run. Rows: 16 B messages per second Python -> C++ (timed by the C++ receiver, from the
1/20th message to the last) and the round trip p50 of one 16 B message.

    bench_python.py SERVER [--quick] [--csv]     (SERVER: build/bench/bench_python_server)

PYTHONPATH needs python/ and the generated bench_sage module (build/bench has a wrapper script,
build/bench/bench_python, that sets both).
"""
import resource
import socket
import statistics
import struct
import subprocess
import sys
import time

import flatbuffers

import bench_sage as bench
import sagepeer
from sagepeer import wire

SCENARIO_RATE = "Python -> C++ TCP 16 B"
SCENARIO_RTT = "Python <-> C++ TCP round trip 16 B"
PEER = "sage (sagepeer)"
FLOOR = "raw Python socket loop (same framing)"


def start(args):
    p = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    line = p.stdout.readline()
    if not line.startswith("port "):
        raise SystemExit("bench_python: the server did not start")
    return p, int(line.split()[1])


def rss_kib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


# ------------------------------------------------------------------------------------------- floor

HELLO = None


def raw_hello():
    entries = {bench.Blob.packet_type: bench.Blob.fingerprint}
    return wire.frame(wire.record(1, wire.encode_hello("raw", entries, bench.Blob.schema_description)))


def raw_blob(seq, data):
    """A bench.Blob FlatBuffer built with flatbuffers.Builder by hand (what any Python program must do)."""
    b = flatbuffers.Builder(64)
    b.StartVector(1, len(data), 1)
    b.head -= len(data)
    b.Bytes[b.head:b.head + len(data)] = data
    vec = b.EndVector()
    b.StartObject(2)
    b.PrependUint64Slot(0, seq, 0)
    b.PrependUOffsetTRelativeSlot(1, vec, 0)
    b.Finish(b.EndObject())
    payload = b.Output()
    return struct.pack("<BBHI", 160, 0, 0, len(payload)) + payload + bytes(-len(payload) % 8)


def raw_send(port, count, data):
    s = socket.create_connection(("127.0.0.1", port))
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    s.sendall(raw_hello())
    batch = []
    for i in range(count):
        batch.append(raw_blob(i, data))
        if len(batch) == 256:
            body = b"".join(batch)
            s.sendall(struct.pack("<I2sBB", len(body), b"SG", 1, 0) + body)
            batch = []
    if batch:
        body = b"".join(batch)
        s.sendall(struct.pack("<I2sBB", len(body), b"SG", 1, 0) + body)
    return s


def raw_rtt(port, rounds, data):
    s = socket.create_connection(("127.0.0.1", port))
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    s.sendall(raw_hello())
    buf = bytearray()

    def read_frame():
        while True:
            if len(buf) >= 8:
                n = struct.unpack_from("<I", buf)[0]
                if len(buf) >= 8 + n:
                    body = bytes(buf[8:8 + n])
                    del buf[:8 + n]
                    return body
            chunk = s.recv(65536)
            if not chunk:
                raise SystemExit("bench_python: the server closed")
            buf.extend(chunk)

    read_frame()  # the server's hello
    us = []
    for i in range(rounds + 20):
        t0 = time.perf_counter()
        rec = raw_blob(i, data)
        s.sendall(struct.pack("<I2sBB", len(rec), b"SG", 1, 0) + rec)
        while True:
            body = read_frame()
            if body[0] == 160:
                bench.Blob.decode(body[8:8 + struct.unpack_from("<I", body, 4)[0]])
                break
        if i >= 20:
            us.append((time.perf_counter() - t0) * 1e6)
    s.close()
    return us


# --------------------------------------------------------------------------------------- sagepeer

def peer_send(port, count, data):
    mgr = sagepeer.Manager(sagepeer.NetworkOptions(send_buffer_limit=64 << 20))
    mgr.register_messages(bench.wire_messages)
    peer = mgr.connect("127.0.0.1", port)
    blob = bench.Blob(seq=0, data=list(data))
    sent = 0
    while sent < count:
        for _ in range(min(256, count - sent)):
            blob.seq = sent
            mgr.send_message(blob, peer)
            sent += 1
        mgr.tick()
    while mgr._peers and any(p.outbuf or p.held or p.batch for p in mgr._peers.values()):
        mgr.tick()
        mgr.wait_for_next_tick(0.001)
    return mgr


def peer_rtt(port, rounds, data):
    class Back(sagepeer.Actor):
        subscriptions = [bench.Blob]
        n = 0

        def handle_Blob(self, msg):
            self.n += 1

    mgr = sagepeer.Manager()
    back = mgr.register_actor(Back())
    mgr.register_messages(bench.wire_messages)
    mgr.connect("127.0.0.1", port)
    ping = bench.Blob(seq=0, data=list(data))
    us = []
    for i in range(rounds + 20):
        t0 = time.perf_counter()
        mgr.send_message(ping)
        want = back.n + 1
        while back.n < want:
            mgr.tick()
            if back.n < want:
                mgr.wait_for_next_tick(0.1)
        if i >= 20:
            us.append((time.perf_counter() - t0) * 1e6)
    mgr.close()
    return us


def result(scenario, metric, unit, higher, impl, value):
    return "result,%s,%s,%s,%s,%s,%.6g,%d,-" % (scenario, metric, unit, "higher" if higher else "lower", impl, value,
                                               rss_kib())


def main():
    server = sys.argv[1]
    quick = "--quick" in sys.argv
    csv = "--csv" in sys.argv
    count = 2000 if quick else 100000
    rounds = 50 if quick else 2000
    data = bytes(range(16))
    rows = []
    for impl, send in ((FLOOR, raw_send), (PEER, peer_send)):
        p, port = start([server, "count", str(count)])
        keep = send(port, count, data)
        line = p.stdout.readline()
        p.wait()
        del keep
        if not line.startswith("rate "):
            raise SystemExit("bench_python: %s: no rate from the server" % impl)
        rows.append(result(SCENARIO_RATE, "throughput", "msg/s", True, impl, float(line.split()[1])))
    for impl, rtt in ((FLOOR, raw_rtt), (PEER, peer_rtt)):
        p, port = start([server, "echo"])
        us = rtt(port, rounds, data)
        p.stdin.close()
        p.wait()
        rows.append(result(SCENARIO_RTT, "p50", "us", False, impl, statistics.median(us)))
    for r in rows:
        print(r if csv else r.replace(",", "\t"))


if __name__ == "__main__":
    main()
