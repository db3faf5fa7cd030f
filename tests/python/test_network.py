"""The Python peer (sagepeer) against C++ sage nodes over TCP, and its own listener's defences.

C++ side: examples/chat (`chat server 0 127.0.0.1`, `chat client HOST PORT NICK`), path in SAGE_CHAT.
Every wait has a deadline; port 0 and loopback only.
"""
import importlib.util
import os
import random
import socket
import struct
import subprocess
import tempfile
import threading
import time
import unittest

import chat_sage as chat
import sagepeer
from sagepeer import wire

CHAT = os.environ["SAGE_CHAT"]
SAGEC = os.environ["SAGEC"]
SOURCE = os.environ["SAGE_SOURCE_DIR"]
DEADLINE = 30.0


def tick_until(managers, cond, timeout=DEADLINE):
    end = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > end:
            return False
        for m in managers:
            m.tick()
        managers[0].wait_for_next_tick(0.01)
    return True


class ChatServer:
    """examples/chat's C++ server on a free port; its stdout and stderr collected in files."""

    def __init__(self, tmp):
        self.out, self.err = os.path.join(tmp, "node.out"), os.path.join(tmp, "node.log")
        with open(self.out, "w") as out, open(self.err, "w") as err:
            self.proc = subprocess.Popen([CHAT, "server", "0", "127.0.0.1"], stdout=out, stderr=err)
        end = time.monotonic() + DEADLINE
        self.port = None
        while self.port is None and time.monotonic() < end:
            for line in self.output().splitlines():
                if line.startswith("listening on port "):
                    self.port = int(line.split()[-1])
            time.sleep(0.02)
        assert self.port, "the chat server did not start"

    def log(self):
        with open(self.err) as f:
            return f.read()

    def output(self):
        with open(self.out) as f:
            return f.read()

    def stop(self):
        self.proc.kill()
        self.proc.wait()


class Lines(sagepeer.Actor):
    # By name: the evolution tests register other builds of chat.Line (the manager registers the class
    # of a subscription given as a class).
    subscriptions = ["Line", "PeerRefused", "PeerConnected"]

    def __init__(self):
        super().__init__()
        self.lines, self.refused, self.connected = [], [], []

    def handle_Line(self, msg, sender):
        self.lines.append((msg.nick, msg.text, sender))

    def handle_PeerRefused(self, msg):
        self.refused.append(msg)

    def handle_PeerConnected(self, msg):
        self.connected.append(msg)


def generated(tmp, name, schema_text):
    """Imports a module sagec generates from `schema_text` (a chat.fbs variant) as `name`."""
    d = os.path.join(tmp, name)
    os.makedirs(d)
    with open(os.path.join(d, "chat.fbs"), "w") as f:
        f.write(schema_text)
    subprocess.run([SAGEC, "generate", "--lang", "python", "-o", d, os.path.join(d, "chat.fbs")], check=True)
    spec = importlib.util.spec_from_file_location(name, os.path.join(d, "chat_sage.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class PythonClientCppServer(unittest.TestCase):
    def test_python_clients_of_the_cpp_chat_server_see_each_others_lines(self):
        with tempfile.TemporaryDirectory() as tmp:
            server = ChatServer(tmp)
            try:
                ann, bob = sagepeer.Manager(), sagepeer.Manager()
                ann_lines, bob_lines = ann.register_actor(Lines()), bob.register_actor(Lines())
                for m, nick in ((ann, "ann"), (bob, "bob")):
                    m.register_messages(chat.wire_messages)
                    m.connect("127.0.0.1", server.port)
                    m.send_message(chat.Join(nick="ann" if m is ann else "bob"))
                self.assertTrue(tick_until([ann, bob], lambda: ("server", "bob joined") in
                                           [(n, t) for n, t, _ in ann_lines.lines]))
                ann.send_message(chat.Say(text="hello bob, ü"))
                self.assertTrue(tick_until([ann, bob], lambda: bob_lines.lines and bob_lines.lines[-1][:2] ==
                                           ("ann", "hello bob, ü")))
                self.assertEqual(bob_lines.lines[-1][2].kind, "peer")
                self.assertEqual(ann.stats["bad_input"] + bob.stats["bad_input"], 0)
                self.assertIn("ann joined", server.output())
            finally:
                server.stop()


    def test_types_a_python_peer_registers_after_the_handshake_are_announced_before_their_first_record(self):
        with tempfile.TemporaryDirectory() as tmp:
            server = ChatServer(tmp)
            try:
                late = sagepeer.Manager()
                lines = late.register_actor(Lines())
                late.register_messages([chat.Line])  # Join and Say: registered by their first send
                late.connect("127.0.0.1", server.port)
                self.assertTrue(tick_until([late], lambda: lines.connected))
                late.send_message(chat.Join(nick="late"))
                late.send_message(chat.Say(text="announced"))
                self.assertTrue(tick_until([late], lambda: "late joined" in server.output()))
                late.tick()
                self.assertEqual(late.peers(), [lines.connected[0].peer])
                self.assertNotIn("dropped", server.log())
            finally:
                server.stop()


class SendLimits(unittest.TestCase):
    def test_sends_past_send_buffer_limit_or_nesting_past_64_tables_are_refused_at_the_call(self):
        import recursive_sage as rc
        server = sagepeer.Manager()
        port = server.listen("127.0.0.1", 0)
        client = sagepeer.Manager(sagepeer.NetworkOptions(send_buffer_limit=64 * 1024))
        client.register_messages(chat.wire_messages + rc.wire_messages)
        peer = client.connect("127.0.0.1", port)
        with self.assertRaisesRegex(sagepeer.SendError, "send_buffer_full"):
            for _ in range(10000):  # held until the server's hello: bounded all the same
                client.send_message(chat.Say(text="x" * 100), peer)
        node = rc.Node(name="leaf")
        for _ in range(70):
            node = rc.Node(next=node)
        with self.assertRaisesRegex(sagepeer.SendError, "too_deep: feat.recursive.Node"):
            client.send_message(node, peer)
        client.close()
        server.close()


class CppClientPythonServer(unittest.TestCase):
    def test_a_cpp_chat_client_talks_to_a_python_server(self):
        class Server(sagepeer.Actor):
            subscriptions = [chat.Join, chat.Say]

            def __init__(self):
                super().__init__()
                self.nicks, self.said = {}, []

            def handle_Join(self, msg, sender):
                self.nicks[sender] = msg.nick
                self.manager.send_message(chat.Line(nick="server", text="welcome " + msg.nick), sender)

            def handle_Say(self, msg, sender):
                self.said.append((self.nicks.get(sender), msg.text))
                self.manager.send_message(chat.Line(nick=self.nicks.get(sender, "?"), text=msg.text[::-1]), sender)

        mgr = sagepeer.Manager()
        srv = mgr.register_actor(Server())
        mgr.register_messages(chat.wire_messages)
        port = mgr.listen("127.0.0.1", 0)
        client = subprocess.Popen([CHAT, "client", "127.0.0.1", str(port), "cid"], stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            out = []
            reader = threading.Thread(target=lambda: out.extend(client.stdout), daemon=True)
            reader.start()
            self.assertTrue(tick_until([mgr], lambda: out))
            self.assertEqual(out[0], "[cid sees] <server> welcome cid\n")
            client.stdin.write("stressed\n")
            client.stdin.flush()
            self.assertTrue(tick_until([mgr], lambda: len(out) == 2))
            self.assertEqual(out[1], "[cid sees] <cid> desserts\n")
            client.stdin.close()  # the client leaves at end of input
            self.assertTrue(tick_until([mgr], lambda: client.poll() is not None))
            self.assertEqual(srv.said, [("cid", "stressed")])
            self.assertEqual(client.returncode, 0)
            self.assertEqual(mgr.stats["bad_input"], 0)
        finally:
            if client.poll() is None:
                client.kill()
            client.wait()
            mgr.close()


class Evolution(unittest.TestCase):
    def test_a_python_peer_with_a_compatible_newer_schema_is_accepted_by_the_cpp_server(self):
        with tempfile.TemporaryDirectory() as tmp:
            v2 = generated(tmp, "chat_v2", open(os.path.join(SOURCE, "examples/chat/chat.fbs")).read().replace(
                "table Say (packet_type: 141) { text: string; }",
                "table Say (packet_type: 141) { text: string; mood: int = 3; }\ntable Wave (packet_type: 150) { n: int; }"))
            server = ChatServer(tmp)
            try:
                m = sagepeer.Manager()
                lines = m.register_actor(Lines())
                m.register_messages(v2.wire_messages)
                peer = m.connect("127.0.0.1", server.port)
                m.send_message(v2.Join(nick="newer"))
                self.assertTrue(tick_until([m], lambda: lines.connected))
                with self.assertRaisesRegex(sagepeer.SendError, "does not know message chat.Wave"):
                    m.send_message(v2.Wave(n=1), peer)
                m.send_message(v2.Say(text="from the future", mood=7))
                self.assertTrue(tick_until([m], lambda: "newer joined" in server.output()))
                self.assertEqual(lines.refused, [])
            finally:
                server.stop()

    def test_an_incompatible_python_peer_is_refused_with_the_reason_on_both_ends(self):
        with tempfile.TemporaryDirectory() as tmp:
            bad = generated(tmp, "chat_bad", open(os.path.join(SOURCE, "examples/chat/chat.fbs")).read().replace(
                "table Say (packet_type: 141) { text: string; }", "table Say (packet_type: 141) { text: int; }"))
            server = ChatServer(tmp)
            try:
                m = sagepeer.Manager()
                lines = m.register_actor(Lines())
                m.register_messages(bad.wire_messages)
                m.connect("127.0.0.1", server.port)
                self.assertTrue(tick_until([m], lambda: lines.refused))
                # Whose type is whose: the peer's first, then this node's (the same sentences as C++).
                self.assertIn("field chat.Say.text is string in peer 127.0.0.1:%d but int in this node" % server.port,
                              lines.refused[0].reason)
                self.assertNotIn("old schemas", lines.refused[0].reason)
                self.assertEqual(lines.connected, [])
                end = time.monotonic() + DEADLINE
                while " but string in this node" not in server.log() and time.monotonic() < end:
                    time.sleep(0.05)
                self.assertIn("error: field chat.Say.text is int in peer 127.0.0.1:", server.log())
                self.assertIn(" but string in this node", server.log())
            finally:
                server.stop()


def hello_frame(name=b"raw", version=2):
    h = struct.pack("<IHHQIIII", wire.MAGIC, version, len(name), 0xcbf29ce484222325, 0, 0, 0, 0) + name
    return wire.frame(wire.record(1, h))


class HostileInput(unittest.TestCase):
    def setUp(self):
        self.mgr = sagepeer.Manager(sagepeer.NetworkOptions(heartbeat_timeout=1.0))
        self.lines = self.mgr.register_actor(Lines())
        self.mgr.register_messages(chat.wire_messages)
        self.port = self.mgr.listen("127.0.0.1", 0)

    def tearDown(self):
        self.mgr.close()

    def send_and_wait_closed(self, data):
        s = socket.create_connection(("127.0.0.1", self.port))
        s.sendall(data)
        s.settimeout(0.01)
        end = time.monotonic() + DEADLINE
        while time.monotonic() < end:
            self.mgr.tick()  # never raises for what a peer sends
            try:
                if s.recv(65536) == b"":
                    break
            except socket.timeout:
                pass
            except ConnectionResetError:
                break
        s.close()

    def test_hostile_bytes_into_a_python_listener_are_dropped_counted_and_the_listener_serves_on(self):
        cases = {
            b"GET / HTTP/1.1\r\n\r\n": "not a sage frame header",
            struct.pack("<I", 1 << 30) + b"SG\x01\x00": "too_large",
            wire.frame(wire.record(141, b"\0" * 8)): "the first record is not a hello",
            wire.frame(wire.record(1, b"\x12\x34\x56\x78" + bytes(32))): "hello without the SAGE magic",
            hello_frame(b"\xff"): "hello name is not valid UTF-8",
            hello_frame() + hello_frame(): "a second hello",
            hello_frame() + wire.frame(wire.record(141, b"\xff" * 24)): "does not verify",
            hello_frame() + wire.frame(wire.record(77, b"")): "control packet 77",
            hello_frame() + wire.frame(struct.pack("<BBHI", 141, 0, 0, 64) + b"\0" * 8): "runs past the end",
        }
        for i, (data, reason) in enumerate(cases.items()):
            with self.subTest(reason=reason):
                self.send_and_wait_closed(data)
                self.assertEqual(self.mgr.stats["bad_input"], i + 1)
                self.assertIn(reason, self.mgr.stats["last_bad_input"])
        # Still serving: a real client connects and gets an answer.
        client = sagepeer.Manager()
        got = client.register_actor(Lines())
        client.register_messages(chat.wire_messages)
        client.connect("127.0.0.1", self.port)
        self.assertTrue(tick_until([self.mgr, client], lambda: got.connected))
        self.assertEqual(self.mgr.stats["bad_input"], len(cases))
        client.close()

    def test_mutated_streams_never_raise_out_of_tick_and_each_connection_ends(self):
        rng = random.Random(25)
        good = (hello_frame() + wire.frame(wire.record(140, chat.Join(nick="fuzz").encode()) +
                                           wire.record(141, chat.Say(text="x" * 40).encode())) +
                wire.frame(wire.record(32, b"")))
        for _ in range(200):
            data = bytearray(good)
            for _ in range(rng.randint(1, 6)):
                data[rng.randrange(len(data))] = rng.randrange(256)
            if rng.random() < 0.3:
                data = data[:rng.randrange(len(data))]
            s = socket.create_connection(("127.0.0.1", self.port))
            s.sendall(bytes(data))
            s.shutdown(socket.SHUT_WR)
            s.settimeout(0.005)
            end = time.monotonic() + DEADLINE
            while time.monotonic() < end:
                self.mgr.tick()
                try:
                    if s.recv(65536) == b"":
                        break
                except socket.timeout:
                    pass
                except ConnectionResetError:
                    break
            else:
                self.fail("a connection did not end")
            s.close()
        self.assertGreater(self.mgr.stats["bad_input"], 100)
        self.assertNotIn("internal error", self.mgr.stats["last_bad_input"])

    def test_a_node_joining_a_python_listener_as_a_group_is_refused_with_the_reason(self):
        node = sagepeer.Manager()
        err = []

        def join():
            try:
                node.join_as_group("127.0.0.1", self.port, "workers")
            except sagepeer.NetworkError as e:
                err.append(str(e))

        t = threading.Thread(target=join)
        t.start()
        self.assertTrue(tick_until([self.mgr], lambda: not t.is_alive()))
        t.join()
        node.close()
        self.assertEqual(err, ["cannot join as group 'workers': refused by the peer: not admitted: group 'workers': "
                               "a Python listener does not host remote groups"])
        self.assertEqual(self.mgr.stats["admissions_refused"], 1)

    def test_a_version_1_hello_is_refused_with_the_cpp_reason(self):
        v1 = struct.pack("<IHHQII", wire.MAGIC, 1, 3, 0, 0, 0) + b"old"
        s = socket.create_connection(("127.0.0.1", self.port))
        s.sendall(wire.frame(wire.record(1, v1)))
        s.settimeout(0.01)
        data = b""
        end = time.monotonic() + DEADLINE
        while time.monotonic() < end and b"speaks protocol 1" not in data:
            self.mgr.tick()
            try:
                data += s.recv(65536)
            except socket.timeout:
                pass
        s.close()
        self.assertIn(b"speaks protocol 1; upgrade it (this build speaks 2; rolling upgrades work from protocol 2 on)", data)
        self.assertEqual(self.mgr.stats["handshakes_refused"], 1)

    def test_a_peer_that_goes_silent_after_its_hello_is_dropped_at_the_heartbeat_timeout(self):
        s = socket.create_connection(("127.0.0.1", self.port))
        s.sendall(hello_frame())
        self.assertTrue(tick_until([self.mgr], lambda: self.lines.connected))
        self.assertTrue(tick_until([self.mgr], lambda: self.mgr.stats["heartbeat_timeouts"] == 1))
        self.assertEqual(self.mgr.stats["bad_input"], 0)
        self.assertEqual(self.mgr.peers(), [])
        s.close()

    def test_a_trickled_frame_is_dropped_at_frame_timeout_and_a_silent_client_at_hello_timeout(self):
        self.mgr.options.hello_timeout = 0.5
        self.mgr.options.frame_timeout = 0.5
        silent = socket.create_connection(("127.0.0.1", self.port))
        self.assertTrue(tick_until([self.mgr], lambda: self.mgr.stats["hello_timeouts"] == 1))
        silent.close()
        s = socket.create_connection(("127.0.0.1", self.port))
        s.sendall(hello_frame())
        self.assertTrue(tick_until([self.mgr], lambda: self.lines.connected))
        frame = wire.frame(wire.record(141, chat.Say(text="slow").encode()))
        end = time.monotonic() + DEADLINE
        i = 0
        while self.mgr.stats["frame_timeouts"] == 0 and time.monotonic() < end and i < len(frame) - 1:
            try:
                s.sendall(frame[i:i + 1])  # one byte per 0.1 s: every byte resets the heartbeat timer
            except OSError:
                break
            i += 1
            t = time.monotonic() + 0.1
            while time.monotonic() < t:
                self.mgr.tick()
                self.mgr.wait_for_next_tick(0.01)
        self.assertEqual(self.mgr.stats["frame_timeouts"], 1)
        self.assertEqual(self.mgr.stats["heartbeat_timeouts"], 0)
        s.close()

    def test_a_python_client_notices_a_silent_cpp_node_and_a_cpp_node_hears_python_heartbeats(self):
        with tempfile.TemporaryDirectory() as tmp:
            server = ChatServer(tmp)
            try:
                m = sagepeer.Manager()
                lines = m.register_actor(Lines())
                m.register_messages(chat.wire_messages)
                m.connect("127.0.0.1", server.port)
                self.assertTrue(tick_until([m], lambda: lines.connected))
                # 12 s of heartbeats only (the C++ heartbeat_timeout is 10 s): still connected.
                start = time.monotonic()
                tick_until([m], lambda: time.monotonic() - start > 12)
                self.assertEqual(len(m.peers()), 1)
                self.assertNotIn("dropped", server.log())
                # The node stops (SIGSTOP): nothing arrives; dropped after heartbeat_timeout.
                m.options.heartbeat_timeout = 1.0
                server.proc.send_signal(19)
                self.assertTrue(tick_until([m], lambda: m.stats["heartbeat_timeouts"] == 1))
                server.proc.send_signal(18)
            finally:
                server.stop()


if __name__ == "__main__":
    unittest.main()
