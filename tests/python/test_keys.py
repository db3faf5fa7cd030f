"""Shared-key mode (docs/wire-format.md "Shared-key mode") between the Python peer and C++ sage nodes.

sagepeer's handshake and sealing are written from the docs alone; these tests hold them against the C++
runtime: examples/chat with `--key-file PATH --key-id ID` (path in SAGE_CHAT) as server and as client,
both ways, refusals with the C++ reason texts, and tampered or replayed sealed frames dropped as bad input.
Every wait has a deadline; port 0 and loopback only.
"""
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
from sagepeer import keys, wire

CHAT = os.environ["SAGE_CHAT"]
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


def wait_for(cond, timeout=DEADLINE):
    end = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > end:
            return False
        time.sleep(0.02)
    return True


class Chat:
    """examples/chat (server or client) with its stdout and stderr in files; `key` as --key-file/--key-id."""

    def __init__(self, tmp, args, key=None, stdin=subprocess.DEVNULL):
        tag = args[0] + str(len(os.listdir(tmp)))
        self.out, self.err = os.path.join(tmp, tag + ".out"), os.path.join(tmp, tag + ".log")
        cmd = [CHAT] + args
        if key is not None:
            path = os.path.join(tmp, tag + ".key")
            with open(path, "w") as f:
                f.write(key.hex() + "\n")
            cmd += ["--key-file", path, "--key-id", key.id]
        with open(self.out, "w") as out, open(self.err, "w") as err:
            self.proc = subprocess.Popen(cmd, stdout=out, stderr=err, stdin=stdin)

    def output(self):
        with open(self.out) as f:
            return f.read()

    def log(self):
        with open(self.err) as f:
            return f.read()

    def port(self):
        assert wait_for(lambda: "listening on port " in self.output()), "the chat server did not start: " + self.log()
        return int(self.output().split("listening on port ")[1].split()[0])

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        if self.proc.stdin:
            self.proc.stdin.close()


class Seen(sagepeer.Actor):
    subscriptions = ["Line", "Join", "Say", "PeerConnected", "PeerRefused", "PeerDisconnected"]

    def __init__(self):
        super().__init__()
        self.lines, self.joins, self.says, self.connected, self.refused, self.gone = [], [], [], [], [], []

    def handle_Line(self, msg, sender):
        self.lines.append((msg.nick, msg.text))

    def handle_Join(self, msg, sender):
        self.joins.append((msg.nick, sender))

    def handle_Say(self, msg, sender):
        self.says.append(msg.text)

    def handle_PeerConnected(self, msg):
        self.connected.append(msg)

    def handle_PeerRefused(self, msg):
        self.refused.append(msg)

    def handle_PeerDisconnected(self, msg):
        self.gone.append(msg)


MANAGERS = []  # closed by tearDown


def manager(*ks, **options):
    m = sagepeer.Manager(sagepeer.NetworkOptions(keys=list(ks), **options))
    MANAGERS.append(m)
    m.register_messages(chat.wire_messages)
    seen = m.register_actor(Seen())
    return m, seen


class SharedKeyTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.procs = []
        self.key = sagepeer.SharedKey.generate("chat")

    def tearDown(self):
        while MANAGERS:
            MANAGERS.pop().close()
        for p in self.procs:
            p.stop()
        self.tmp.cleanup()

    def chat(self, args, key=None, **kw):
        c = Chat(self.tmp.name, args, key, **kw)
        self.procs.append(c)
        return c

    def test_python_clients_with_the_key_talk_to_the_keyed_cpp_chat_server_both_ways(self):
        port = self.chat(["server", "0", "127.0.0.1"], self.key).port()
        ann, ann_seen = manager(self.key, name="ann")
        bob, bob_seen = manager(sagepeer.SharedKey.from_hex("chat", self.key.hex()), name="bob")
        ann.connect("127.0.0.1", port)
        ann.send_message(chat.Join(nick="ann"))
        self.assertTrue(tick_until([ann], lambda: ann_seen.connected))
        self.assertEqual(ann_seen.connected[0].identity, "key:chat")
        self.assertEqual(ann.identity(ann_seen.connected[0].peer), "key:chat")
        bob.connect("127.0.0.1", port)
        bob.send_message(chat.Join(nick="bob"))
        # The C++ server opened bob's sealed Join and sealed its Line to ann, who opened it.
        self.assertTrue(tick_until([ann, bob], lambda: ("server", "bob joined") in ann_seen.lines), ann_seen.lines)
        bob.send_message(chat.Say(text="sealed hello"))
        self.assertTrue(tick_until([ann, bob], lambda: ("bob", "sealed hello") in ann_seen.lines), ann_seen.lines)
        self.assertEqual(ann.stats["bad_input"] + bob.stats["bad_input"], 0)

    def test_a_keyed_cpp_chat_client_talks_to_a_keyed_python_listener_both_ways(self):
        other = sagepeer.SharedKey.generate("dashboards")
        server, seen = manager(other, self.key, name="py")
        port = server.listen("127.0.0.1", 0)
        client = self.chat(["client", "127.0.0.1", str(port), "cat"], self.key, stdin=subprocess.PIPE)
        self.assertTrue(tick_until([server], lambda: seen.joins), client.log())
        self.assertEqual(seen.joins[0][0], "cat")
        self.assertEqual([c.identity for c in seen.connected], ["key:chat"])
        server.send_message(chat.Line(nick="py", text="from python"), seen.joins[0][1])
        client.proc.stdin.write(b"from c++\n")
        client.proc.stdin.flush()
        self.assertTrue(tick_until([server], lambda: "[cat sees] <py> from python" in client.output() and seen.says),
                        client.output() + client.log())
        self.assertEqual(seen.says, ["from c++"])
        self.assertEqual(server.stats["bad_input"], 0)
        self.assertEqual(server.stats["authentication_failures"], 0)

    def test_two_python_peers_with_the_same_key_talk_and_a_keyed_one_is_refused_by_a_plain_python_listener(self):
        # connect() blocks for the handshake, so each listener ticks on its own thread.
        class Greeter(Seen):
            def handle_Join(self, msg, sender):
                super().handle_Join(msg, sender)
                self.manager.send_message(chat.Line(nick="hub", text="sealed " + msg.nick), sender)

        def serve(m, stop):
            t = threading.Thread(target=m.run, args=(stop.is_set,), kwargs={"timeout": DEADLINE})
            t.start()
            return t

        stop = threading.Event()
        server = sagepeer.Manager(sagepeer.NetworkOptions(keys=[self.key], name="hub"))
        MANAGERS.append(server)
        server_seen = server.register_actor(Greeter())
        server.register_messages(chat.wire_messages)
        port = server.listen("127.0.0.1", 0)
        plain, _ = manager()
        plain_port = plain.listen("127.0.0.1", 0)
        threads = [serve(server, stop), serve(plain, stop)]
        try:
            client, client_seen = manager(self.key, name="py")
            client.connect("127.0.0.1", port)
            client.send_message(chat.Join(nick="py"))
            self.assertTrue(tick_until([client], lambda: client_seen.lines))
            self.assertEqual(client_seen.lines, [("hub", "sealed py")])
            self.assertTrue(wait_for(lambda: server_seen.connected))
            self.assertEqual([c.identity for c in server_seen.connected + client_seen.connected], ["key:chat"] * 2)

            keyed, _ = manager(self.key)
            with self.assertRaises(sagepeer.NetworkError) as e:
                keyed.connect("127.0.0.1", plain_port)
            self.assertIn("does not speak the shared-key handshake", str(e.exception))
            self.assertTrue(wait_for(lambda: plain.stats["authentication_failures"] == 1))
        finally:
            stop.set()
            for t in threads:
                t.join()
        self.assertEqual(plain.peers(), [])

    def test_a_wrong_key_or_an_unknown_id_is_refused_with_the_cpp_reason_at_both_ends(self):
        port = self.chat(["server", "0", "127.0.0.1"], self.key).port()
        wrong, _ = manager(sagepeer.SharedKey.generate("chat"))
        with self.assertRaises(sagepeer.NetworkError) as e:
            wrong.connect("127.0.0.1", port)
        self.assertIn("shared key 'chat' refused: the key does not match the listener's key of that id", str(e.exception))
        stranger, _ = manager(sagepeer.SharedKey.generate("stranger"))
        with self.assertRaises(sagepeer.NetworkError) as e:
            stranger.connect("127.0.0.1", port)
        self.assertIn("shared key 'stranger' refused: the listener does not know this key id", str(e.exception))
        self.assertEqual(wrong.peers() + stranger.peers(), [])

        # A C++ client with the wrong key at a Python listener: the Python refusal reads as the C++ one.
        server, seen = manager(self.key)
        py_port = server.listen("127.0.0.1", 0)
        client = self.chat(["client", "127.0.0.1", str(py_port), "eve"], sagepeer.SharedKey.generate("chat"))
        self.assertTrue(tick_until([server], lambda: client.proc.poll() is not None), client.log())
        self.assertNotEqual(client.proc.returncode, 0)
        self.assertIn("shared key 'chat' refused: the key does not match the listener's key of that id", client.log())
        self.assertEqual(server.stats["authentication_failures"], 1)
        self.assertEqual(seen.connected, [])
        self.assertEqual(server._peers, {})  # nothing was created for it

    def test_a_plain_peer_and_a_keyed_peer_refuse_each_other_naming_the_shared_keys(self):
        keyed_port = self.chat(["server", "0", "127.0.0.1"], self.key).port()
        plain, seen = manager()
        plain.connect("127.0.0.1", keyed_port)
        self.assertTrue(tick_until([plain], lambda: seen.refused))
        self.assertIn("requires the shared-key handshake (NetworkOptions::keys)", seen.refused[0].reason)
        self.assertEqual(plain.stats["bad_input"], 0)

        plain_port = self.chat(["server", "0", "127.0.0.1"]).port()
        keyed, _ = manager(self.key)
        with self.assertRaises(sagepeer.NetworkError) as e:
            keyed.connect("127.0.0.1", plain_port)
        self.assertIn("NetworkOptions::keys", str(e.exception))

        # A plain C++ client at a keyed Python listener, and a keyed C++ client at a plain one.
        server, _ = manager(self.key)
        port = server.listen("127.0.0.1", 0)
        client = self.chat(["client", "127.0.0.1", str(port), "plain"])
        self.assertTrue(tick_until([server], lambda: server.stats["authentication_failures"] == 1), client.log())
        self.assertEqual(server._peers, {})
        plain_server, _ = manager()
        port = plain_server.listen("127.0.0.1", 0)
        client = self.chat(["client", "127.0.0.1", str(port), "keyed"], self.key)
        self.assertTrue(tick_until([plain_server], lambda: client.proc.poll() is not None), client.log())
        self.assertIn("NetworkOptions::keys", client.log())

    def test_a_tampered_sealed_frame_drops_the_python_peer_at_the_cpp_server(self):
        server = self.chat(["server", "0", "127.0.0.1"], self.key)
        port = server.port()
        m, _ = manager(self.key)
        peer = m.connect("127.0.0.1", port)
        m.send_message(chat.Join(nick="mallory"))
        self.assertTrue(tick_until([m], lambda: "mallory joined" in server.output()))
        p = m._peers[peer.id]

        class Tampering:  # seals as before, then flips a bit of the tag
            def __init__(self, sealer):
                self.sealer = sealer

            def seal(self, body):
                f = self.sealer.seal(body)
                return f[:-1] + bytes([f[-1] ^ 1])

        p.session.send = Tampering(p.session.send)
        m.send_message(chat.Say(text="tampered"))
        self.assertTrue(tick_until([m], lambda: "does not open under the session key" in server.log()), server.log())
        self.assertTrue(tick_until([m], lambda: m.peers() == []))

    def test_tampered_replayed_or_plain_frames_into_a_keyed_python_listener_are_dropped_and_counted(self):
        server, seen = manager(self.key)
        port = server.listen("127.0.0.1", 0)

        def handshake():  # by hand, with sagepeer.keys, while the listener ticks
            s = socket.create_connection(("127.0.0.1", port), timeout=DEADLINE)
            hs = keys.ClientHandshake(self.key)
            s.sendall(hs.hello)
            s.setblocking(False)
            reply = bytearray()

            def k2():
                try:
                    reply.extend(s.recv(keys.K2_BYTES - len(reply)))
                except BlockingIOError:
                    pass
                return len(reply) == keys.K2_BYTES

            self.assertTrue(tick_until([server], k2))
            s.setblocking(True)
            session, k3 = hs.on_reply(bytes(reply))
            s.sendall(k3)
            return s, session

        def closed(s):
            s.setblocking(False)
            try:
                return s.recv(65536) == b""
            except BlockingIOError:
                return False
            except ConnectionResetError:
                return True

        hello = wire.record(wire.HELLO, wire.encode_hello("raw", {}, ""))
        cases = {
            "tampered": lambda seal: (lambda f: f[:12] + bytes([f[12] ^ 0x80]) + f[13:])(seal(hello)),
            "replayed": lambda seal: (lambda f: f + f)(seal(hello)),
            "plain": lambda seal: wire.frame(hello),
        }
        for n, (case, make) in enumerate(cases.items(), 1):
            with self.subTest(case):
                s, session = handshake()
                s.sendall(make(session.send.seal))
                self.assertTrue(tick_until([server], lambda: server.stats["bad_input"] == n), case)
                self.assertIn("does not open under the session key", server.stats["last_bad_input"])
                s.settimeout(None)
                self.assertTrue(tick_until([server], lambda: closed(s)), case)
                s.close()
        self.assertEqual(len(seen.connected), 1)  # the replay's first frame was a good hello
        self.assertEqual(server.peers(), [])

    def test_a_keyed_python_listener_closes_unfinished_handshakes_at_hello_timeout_and_past_max_handshakes(self):
        for limit in ("max_handshakes", "max_handshakes_per_address"):
            with self.subTest(limit):
                server, _ = manager(self.key, hello_timeout=0.3, **{limit: 2})
                port = server.listen("127.0.0.1", 0)
                silent = [socket.create_connection(("127.0.0.1", port), timeout=DEADLINE) for _ in range(3)]
                self.assertTrue(tick_until([server], lambda: server.stats["authentication_failures"] >= 1))
                # The third was refused at once (code 4); the two others end at hello_timeout.
                self.assertEqual(silent[2].recv(16), keys.REFUSAL_MAGIC + bytes([keys.BUSY]))
                self.assertTrue(tick_until([server], lambda: server.stats["authentication_failures"] == 3))
                for s in silent:
                    self.assertIn(s.recv(16), (b"", keys.REFUSAL_MAGIC + bytes([keys.BUSY])))
                    s.close()
                self.assertEqual(server._handshakes, [])


    def test_mutated_handshakes_never_raise_out_of_tick_and_each_ends_as_an_authentication_failure(self):
        server, seen = manager(self.key)
        port = server.listen("127.0.0.1", 0)
        rng = random.Random(22)

        def mutated(data):
            data = bytearray(data)
            for _ in range(rng.randint(1, 4)):
                data[rng.randrange(len(data))] ^= rng.randrange(1, 256)
            return bytes(data[:rng.randrange(len(data))] if rng.random() < 0.3 else data)

        def until_closed(s):
            s.settimeout(0.005)

            def closed():
                try:
                    return s.recv(65536) == b""
                except socket.timeout:
                    return False
                except ConnectionResetError:
                    return True
            return tick_until([server], closed)

        n = 120
        for i in range(n):
            hs = keys.ClientHandshake(self.key)
            s = socket.create_connection(("127.0.0.1", port), timeout=DEADLINE)
            if i % 2:  # a bad K1
                s.sendall(mutated(hs.hello))
            else:  # a good K1, then a bad K3
                s.sendall(hs.hello)
                s.setblocking(False)
                reply = bytearray()

                def k2():
                    try:
                        reply.extend(s.recv(keys.K2_BYTES - len(reply)))
                    except BlockingIOError:
                        pass
                    return len(reply) == keys.K2_BYTES

                self.assertTrue(tick_until([server], k2))
                s.setblocking(True)
                s.sendall(mutated(hs.on_reply(bytes(reply))[1]))
            s.shutdown(socket.SHUT_WR)
            self.assertTrue(until_closed(s), i)
            s.close()
            self.assertNotIn("internal error", server.stats["last_authentication_failure"])
        self.assertTrue(tick_until([server], lambda: server.stats["authentication_failures"] == n))
        self.assertEqual((seen.connected, server._peers, server._handshakes), ([], {}, []))
        # and it still serves a client with the key
        good, _ = manager(self.key)
        serving = threading.Thread(target=tick_until, args=([server], lambda: seen.connected))
        serving.start()
        good.connect("127.0.0.1", port)  # blocks for K2, which the thread's ticks answer
        self.assertTrue(tick_until([good], lambda: good.peers()))
        serving.join()
        self.assertEqual([c.identity for c in seen.connected], ["key:chat"])


class SharedKeyValuesTest(unittest.TestCase):
    def test_shared_keys_read_back_from_hex_and_files_and_bad_ones_are_refused_with_the_reason(self):
        k = sagepeer.SharedKey.generate("workers")
        self.assertEqual(len(k.hex()), 64)
        with tempfile.NamedTemporaryFile("w", suffix=".key") as f:
            f.write("  " + k.hex().upper() + "\n")
            f.flush()
            self.assertEqual(sagepeer.SharedKey.from_file("workers", f.name).bytes, k.bytes)
        self.assertNotIn(k.hex(), repr(k))
        with self.assertRaisesRegex(ValueError, "64 hex digits"):
            sagepeer.SharedKey.from_hex("workers", "abc")
        with self.assertRaisesRegex(ValueError, "1..64 bytes"):
            sagepeer.SharedKey("x" * 65, bytes(32))
        with self.assertRaisesRegex(ValueError, "cannot read shared key"):
            sagepeer.SharedKey.from_file("workers", "/nonexistent/key")

    def test_sealed_frames_follow_the_documented_bytes(self):
        # docs/wire-format.md: header with length = body + 16, ChaCha20-Poly1305 IETF, ad = header,
        # nonce = 4 zero bytes + frame number (u64 LE).
        from nacl import bindings
        key = bytes(range(32))
        sealer = keys.Sealer(key)
        first, second = sealer.seal(b"abc"), sealer.seal(b"abc")
        self.assertEqual(first[:8], struct.pack("<I", 19) + b"SG\x01\x00")
        self.assertNotEqual(first[8:], second[8:])
        self.assertEqual(bindings.crypto_aead_chacha20poly1305_ietf_decrypt(
            second[8:], second[:8], bytes(4) + struct.pack("<Q", 1), key), b"abc")
        opener = keys.Sealer(key)
        self.assertEqual(opener.open(first[:8], first[8:]), b"abc")
        with self.assertRaises(keys.SharedKeyError):
            opener.open(first[:8], first[8:])  # a replay: frame 1 expected


if __name__ == "__main__":
    unittest.main()
