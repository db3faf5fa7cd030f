"""sagepeer.manager: pysage's Manager and Actor, talking sage's TCP wire to C++ (or Python) nodes.

Contracts:
- Single-threaded: everything happens in the caller's thread. ``tick()`` accepts connections,
  reads what arrived (at most ``receive_buffer_limit`` bytes per connection per tick), handles it,
  dispatches queued messages to actors, calls ``Actor.update()``, then writes what was queued.
  Sockets are non-blocking; only ``connect()`` and ``join_as_group()`` block (bounded by
  ``connect_timeout``).
- The wire and rules are the C++ runtime's (docs/network.md, docs/wire-format.md): hello with the
  schema description first, compatibility by ``sagepeer.schema.check_descriptions`` (refusals
  carry the same reasons and are sent as an ``error`` record), heartbeats every
  ``heartbeat_interval`` to a peer that got nothing else, a peer silent for ``heartbeat_timeout``
  dropped, ``hello_timeout``, ``max_message_size`` checked before a frame is buffered, payloads
  decoded by the checked reader (depth 64).
- Shared keys (``NetworkOptions.keys``, docs/python.md "Shared keys"): ``connect()`` proves
  ``keys[0]`` within ``connect_timeout`` (NetworkError with the reason otherwise); a listener accepts
  any of its keys, holding only the handshake's bytes (at most ``max_handshakes`` at once and
  ``max_handshakes_per_address`` from one host, each within ``hello_timeout``) until K3 verifies; then every frame is sealed both ways and the peer's
  identity is "key:<id>" (PeerConnected.identity, ``identity(sender)``). Failed handshakes are
  counted in ``stats["authentication_failures"]``; a sealed frame that does not open drops the peer
  as bad input.
- Bad input from a peer never raises out of ``tick()``: the peer is dropped, counted in
  ``stats["bad_input"]`` (``stats["last_bad_input"]`` has the reason) and logged to stderr
  (``sagepeer: network: dropped ADDR: reason``), and the other peers are served as before.
  Exceptions raised by the application's own handlers do propagate (a bug of the application).
"""

import inspect
import os
import selectors
import socket
import sys
import time

from . import flat, keys as _keys, schema, wire

__all__ = ["Manager", "Actor", "Sender", "NetworkOptions", "NetworkError", "SendError", "PeerConnected",
           "PeerDisconnected", "PeerRefused"]


class NetworkError(Exception):
    """listen/connect/join_as_group failed (address in use, refused, timed out, not admitted)."""


class SendError(Exception):
    """A message cannot be sent: no such peer, the peer is gone, or its schemas do not have the type."""


class Sender:
    """Who sent a message: ``kind`` is "local", "peer" or "group"; ``id`` never reused within a manager."""
    __slots__ = ("kind", "id", "name")

    def __init__(self, kind, id_=0, name=""):
        self.kind, self.id, self.name = kind, id_, name

    def __eq__(self, other):
        return isinstance(other, Sender) and (self.kind, self.id, self.name) == (other.kind, other.id, other.name)

    def __hash__(self):
        return hash((self.kind, self.id, self.name))

    def __repr__(self):
        return "Sender(%s, %d%s)" % (self.kind, self.id, ", %r" % self.name if self.name else "")


LOCAL = Sender("local")
MAIN_GROUP = "__main__"


class PeerConnected:
    """Queued once a peer's hello arrived and was accepted. ``peer`` is its Sender; ``identity`` what
    the other end proved: "key:<id>" with shared keys, else ""."""
    __slots__ = ("peer", "address", "name", "outgoing", "identity")

    def __init__(self, peer, address, name, outgoing, identity=""):
        self.peer, self.address, self.name, self.outgoing, self.identity = peer, address, name, outgoing, identity


class PeerDisconnected:
    """Queued when a connected peer is gone; ``code`` as the C++ Errc ("peer_gone", "malformed", ...)."""
    __slots__ = ("peer", "address", "name", "code", "reason")

    def __init__(self, peer, address, name, code, reason):
        self.peer, self.address, self.name, self.code, self.reason = peer, address, name, code, reason


class PeerRefused:
    """Queued when a handshake was refused (schemas cannot talk); ``by_peer``: the other end refused."""
    __slots__ = ("peer", "address", "name", "reason", "by_peer")

    def __init__(self, peer, address, name, reason, by_peer):
        self.peer, self.address, self.name, self.reason, self.by_peer = peer, address, name, reason, by_peer


class NetworkOptions:
    """The C++ NetworkOptions that apply here, with the same defaults (seconds for durations)."""

    def __init__(self, **kw):
        self.name = ""
        self.heartbeat_interval = 1.0
        self.heartbeat_timeout = 10.0
        self.hello_timeout = 5.0
        self.frame_timeout = 30.0
        self.connect_timeout = 5.0
        self.max_message_size = 1 << 20
        self.receive_buffer_limit = 1 << 20
        self.send_buffer_limit = 8 << 20
        self.max_peers = 1024
        self.drop_log_burst = 10
        self.drop_log_interval = 10.0
        self.keys = []            # sagepeer.SharedKey list: connect() proves keys[0], listen() accepts any
        self.max_handshakes = 128  # shared-key handshakes in progress at once (more are refused, code 4)
        self.max_handshakes_per_address = 8  # of them from one host
        for k, v in kw.items():
            if not hasattr(self, k):
                raise TypeError("NetworkOptions has no option %r" % k)
            setattr(self, k, v)


class _Dropped(Exception):
    def __init__(self, code, text, refused=False):
        super().__init__(text)
        self.code, self.text, self.refused = code, text, refused


class _Peer:
    def __init__(self, manager, sock, address, outgoing, session=None):
        now = time.monotonic()
        self.sock, self.address, self.outgoing = sock, address, outgoing
        self.session = session  # shared-key mode: the sealers of both directions
        self.identity = "key:" + session.key_id if session is not None else ""
        self.sender = Sender("peer", manager._next_peer_id())
        self.inbuf = bytearray()
        self.outbuf = bytearray()
        self.batch = []        # records queued this tick
        self.batch_bytes = 0   # of user records in batch (send_buffer_limit)
        self.held = []         # (packet_type, record) queued before the peer's hello arrived
        self.held_bytes = 0
        self.hello = None      # theirs, once checked
        self.name = ""
        self.entries = {}      # packet_type -> fingerprint the peer knows
        self.announced = set()  # packet_types we told this peer about (hello or announce)
        self.announce_bytes = 0
        self.started = now
        self.last_recv = now
        self.last_send = now
        self.frame_started = None
        self.closing = False   # close once outbuf is written
        self.close_deadline = None
        self.group = None      # for join_as_group: the group name we host
        self.join_result = None
        self.bye = False       # the main group said bye; bye_ack queued


class _KeyHandshake:
    """A connection at a keyed listener before K3 verified: the socket, the bytes read, a deadline."""

    def __init__(self, sock, address, hs):
        self.sock, self.address, self.hs = sock, address, hs
        self.started = time.monotonic()
        self.buf = bytearray()
        self.want = 9  # K1's magic and id length, then the rest of K1, then K3
        self.k1 = None


class Actor:
    """pysage's Actor: ``subscriptions`` lists message classes (or their names); the manager calls
    ``handle_<ClassName>(msg)`` or ``handle_<ClassName>(msg, sender)`` for each one queued, and
    ``update()`` every tick. A handler returning True consumes the message (later actors do not see it)."""

    subscriptions = ()

    def __init__(self):
        self.manager = None

    def update(self):
        pass


class Manager:
    """pysage's ActorManager with sage's network: register_actor, queue_message, trigger, tick,
    listen/connect, send_message, broadcast_message, join_as_group."""

    _singleton = None

    @classmethod
    def get_singleton(cls):
        """pysage's ActorManager.get_singleton(): one Manager per process, made on first use."""
        if cls._singleton is None:
            cls._singleton = cls()
        return cls._singleton

    def __init__(self, options=None):
        self.options = options or NetworkOptions()
        self.actors = []
        self.queue = []
        self.types = {}          # packet_type -> class: what we can receive and send
        self._described = None   # cached (entries, description)
        self._selector = selectors.DefaultSelector()
        self._listener = None
        self._peers = {}         # Sender.id -> _Peer
        self._peer_ids = 0
        self._server = None      # the one connect()ed peer (send_message without a peer)
        self._drop_log = [0.0, 0, 0]  # window start, lines written, suppressed
        self.group_name = ""     # join_as_group: the group this node hosts
        self._main = None        # join_as_group: the main group's _Peer
        self._handshakes = []    # listener side of shared-key handshakes in progress (_KeyHandshake)
        self.stats = {k: 0 for k in ("connections", "frames_received", "records_received", "records_sent", "bad_input",
                                     "heartbeat_timeouts", "hello_timeouts", "frame_timeouts", "peers_refused",
                                     "handshakes_refused", "admissions_refused", "unknown_type_skipped",
                                     "authentication_failures")}
        self.stats["last_bad_input"] = ""
        self.stats["last_authentication_failure"] = ""

    # ---------------------------------------------------------------------------------------- local

    def register_messages(self, messages):
        """Wire message classes (a generated module's ``wire_messages``) this manager sends and receives."""
        for cls in messages:
            self._register(cls)

    def _register(self, cls):
        pt = getattr(cls, "packet_type", None)
        if pt is None:
            return False
        known = self.types.get(pt)
        if known is cls:
            return False
        if known is not None:
            raise ValueError("packet_type %d is both %s and %s" % (pt, known.message_name, cls.message_name))
        self.types[pt] = cls
        self._described = None
        return True

    def register_actor(self, actor):
        actor.manager = self
        handlers = {}
        for sub in actor.subscriptions:
            if isinstance(sub, str):
                name = sub
            else:
                name = sub.__name__
                self._register(sub)
            fn = getattr(actor, "handle_" + name, None)
            if fn is None:
                raise TypeError("%s subscribes to %s but has no handle_%s" % (type(actor).__name__, name, name))
            try:
                two = len(inspect.signature(fn).parameters) >= 2
            except (TypeError, ValueError):
                two = False
            handlers[name] = (fn, two)
        actor._sage_handlers = handlers
        self.actors.append(actor)
        self._announce_new_types()
        return actor

    def unregister_actor(self, actor):
        self.actors.remove(actor)
        actor.manager = None

    def queue_message(self, msg, sender=LOCAL):
        """Queues `msg` for this manager's actors (dispatched by the next tick)."""
        self.queue.append((msg, sender))

    def trigger(self, msg, sender=LOCAL):
        """Delivers `msg` to the subscribed actors now; True if one consumed it."""
        return self._dispatch(msg, sender)

    def _dispatch(self, msg, sender):
        name = type(msg).__name__
        for actor in list(self.actors):
            h = actor._sage_handlers.get(name)
            if h is None:
                continue
            fn, two = h
            if (fn(msg, sender) if two else fn(msg)) is True:
                return True
        return False

    def tick(self, max_time=None):
        """One round: network in, queued messages to actors, update(), network out. Returns the number of
        messages dispatched. `max_time` (seconds) bounds the dispatching; what is left stays queued."""
        self._network_in(0)
        start = time.monotonic()
        queued, self.queue = self.queue, []
        n = 0
        for i, (msg, sender) in enumerate(queued):
            if max_time is not None and time.monotonic() - start > max_time:
                self.queue[:0] = queued[i:]
                break
            self._dispatch(msg, sender)
            n += 1
        for actor in list(self.actors):
            actor.update()
        self._network_out()
        return n

    def wait_for_next_tick(self, timeout):
        """Sleeps until network data arrives or `timeout` seconds pass (returns at once if messages wait)."""
        if self.queue:
            return
        self._select(timeout)

    def run(self, until, interval=0.01, timeout=None):
        """Ticks until `until()` is true (or `timeout` seconds pass: False)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not until():
            if deadline is not None and time.monotonic() > deadline:
                return False
            self.tick()
            self.wait_for_next_tick(interval)
        return True

    # -------------------------------------------------------------------------------------- network

    def _next_peer_id(self):
        self._peer_ids += 1
        return self._peer_ids

    def _check_keys(self):
        ks = list(self.options.keys or [])
        for k in ks:
            if not isinstance(k, _keys.SharedKey):
                raise TypeError("NetworkOptions.keys holds sagepeer.SharedKey values, not %r" % (k,))
        if len({k.id for k in ks}) != len(ks):
            raise ValueError("NetworkOptions.keys has two keys with the same id")
        if ks:
            _keys._need_nacl()
        return ks

    def listen(self, host="0.0.0.0", port=0):
        """Listens for peers; returns the port bound (port 0 picks a free one). With NetworkOptions.keys,
        a peer must prove one of them (the shared-key handshake) before anything is created for it."""
        self._check_keys()
        if self._listener is not None:
            raise NetworkError("this manager already listens on port %d" % self.listening())
        try:
            s = socket.create_server((host, port), reuse_port=False, backlog=128)
        except OSError as e:
            raise NetworkError("cannot listen on %s:%d: %s" % (host, port, e.strerror or e)) from None
        s.setblocking(False)
        self._listener = s
        self._selector.register(s, selectors.EVENT_READ, None)
        return s.getsockname()[1]

    def listening(self):
        return self._listener.getsockname()[1] if self._listener else 0

    def connect(self, host, port):
        """Connects to a sage node (blocking up to connect_timeout); returns its Sender. The handshake
        completes in later ticks (PeerConnected, or PeerRefused). With NetworkOptions.keys, the
        shared-key handshake (proving keys[0]) is part of connect(): NetworkError with the reason if
        the node refuses the key, does not prove it, or listens without keys."""
        ks = self._check_keys()
        started = time.monotonic()
        try:
            s = socket.create_connection((host, port), timeout=self.options.connect_timeout)
        except OSError as e:
            raise NetworkError("cannot connect to tcp://%s:%d: %s" % (host, port, e.strerror or e)) from None
        session = None
        if ks:
            try:
                session = self._client_handshake(s, ks[0], started + self.options.connect_timeout)
            except NetworkError as e:
                s.close()
                raise NetworkError("cannot connect to tcp://%s:%d: %s" % (host, port, e)) from None
        peer = self._add_peer(s, "%s:%d" % (host, port), True, session)
        self._server = peer if self._server is None else False
        self._network_out()  # the hello goes at once, as the C++ runtime writes it
        return peer.sender

    def _client_handshake(self, s, key, deadline):
        """K1, then K2 (or a refusal), then K3, on the blocking socket `s`; the Session, else NetworkError."""
        hs = _keys.ClientHandshake(key)

        def read(n):
            got = b""
            while len(got) < n:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise NetworkError("the shared-key handshake did not finish within %d ms (connect_timeout)"
                                       % (self.options.connect_timeout * 1000))
                s.settimeout(left)
                try:
                    data = s.recv(n - len(got))
                except socket.timeout:
                    continue
                except OSError as e:
                    data = None
                    why = e.strerror or str(e)
                if not data:
                    raise NetworkError("%s during the shared-key handshake (a listener without NetworkOptions::keys "
                                       "closes such connections)" % ("connection closed" if data == b"" else why))
                got += data
            return got

        try:
            s.settimeout(max(0.001, deadline - time.monotonic()))
            s.sendall(hs.hello)
            head = read(8)
            if head == _keys.REFUSAL_MAGIC:
                reply = head + read(_keys.REFUSAL_BYTES - 8)
            elif head == _keys.K2_MAGIC:
                reply = head + read(_keys.K2_BYTES - 8)
            else:
                raise NetworkError("it does not speak the shared-key handshake (does it listen with "
                                   "NetworkOptions::keys?)")
            session, k3 = hs.on_reply(reply)
            s.sendall(k3)
        except _keys.SharedKeyError as e:
            raise NetworkError(e.text) from None
        except OSError as e:
            raise NetworkError("%s during the shared-key handshake" % (e.strerror or e)) from None
        return session

    def _add_peer(self, s, address, outgoing, session=None):
        s.setblocking(False)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        peer = _Peer(self, s, address, outgoing, session)
        self._peers[peer.sender.id] = peer
        self._selector.register(s, selectors.EVENT_READ, peer)
        self.stats["connections"] += 1
        entries, description = self._description()
        peer.batch.append(wire.record(wire.HELLO, wire.encode_hello(self.group_name or self.options.name, entries,
                                                                     description, os.getpid())))
        peer.announced.update(entries)
        return peer

    def _description(self):
        if self._described is None:
            entries = {pt: cls.fingerprint for pt, cls in self.types.items()}
            texts = [self.types[pt].schema_description for pt in sorted(self.types)]
            desc = schema.to_text(schema.combine(texts)) if texts else ""
            self._described = (entries, desc)
        return self._described

    def _announce_new_types(self):
        entries, _ = self._description()
        for peer in self._peers.values():
            if peer.closing:
                continue
            new = {pt: fp for pt, fp in entries.items() if pt not in peer.announced}
            if new:
                texts = [self.types[pt].schema_description for pt in sorted(new)]
                peer.batch.append(wire.record(wire.ANNOUNCE, wire.encode_announce(new, schema.to_text(schema.combine(texts)))))
                peer.announced.update(new)

    def peers(self):
        """Senders of the peers whose handshake completed."""
        return [p.sender for p in self._peers.values() if p.hello is not None and not p.closing]

    def identity(self, peer):
        """What a connected peer proved: "key:<id>" (shared keys), else ""; None if there is no such peer."""
        p = self._peers.get(peer.id) if isinstance(peer, Sender) and peer.kind == "peer" else None
        return None if p is None else p.identity

    def send_message(self, msg, peer=None):
        """Queues `msg` for one peer (its Sender; default: the one connect()ed server), written at the
        end of this tick. SendError if the peer is gone or its schemas do not have the type."""
        if peer is None:
            if not self._server:
                raise SendError("no_server: send_message without a peer needs exactly one connect()ed peer")
            p = self._server
        else:
            p = self._peers.get(peer.id) if isinstance(peer, Sender) and peer.kind == "peer" else None
            if p is None and isinstance(peer, Sender) and peer.kind == "group" and self._main is not None:
                return self.queue_message_to_group(peer.name or MAIN_GROUP, msg)
        if p is None or p.closing:
            raise SendError("peer_gone: no connected peer %r" % (peer,))
        self._send(p, msg)

    def _send(self, p, msg, prefix=None):
        cls = type(msg)
        pt = getattr(cls, "packet_type", None)
        if pt is None:
            raise SendError("%s is not a wire message (no packet_type)" % cls.__name__)
        if self._register(cls):
            self._announce_new_types()
        payload = msg.encode()
        if cls.max_depth == -1 or cls.max_depth > flat.MAX_DEPTH:  # a recursive type: check what was built
            try:
                cls.decode(payload)
            except flat.DecodeError as e:
                raise SendError("too_deep: %s: %s (sage::wire::max_message_depth is %d)"
                                % (cls.message_name, e, flat.MAX_DEPTH)) from None
        if len(payload) + 16 > self.options.max_message_size:
            raise SendError("too_large: %s of %d bytes; max_message_size is %d" % (cls.message_name, len(payload),
                                                                                  self.options.max_message_size))
        rec = wire.record(pt, payload)
        if prefix:
            rec = prefix + rec
        if len(p.outbuf) + p.batch_bytes + p.held_bytes + len(rec) > self.options.send_buffer_limit:
            raise SendError("send_buffer_full: peer %s has %d bytes queued; send_buffer_limit is %d"
                            % (p.address, len(p.outbuf) + p.batch_bytes + p.held_bytes, self.options.send_buffer_limit))
        if p.hello is None:
            p.held.append((pt, rec))
            p.held_bytes += len(rec)
            return
        # A record routed to another group is relayed by the main group, which need not know its type
        # (it forwards unknown types unverified); the target group's schemas are the main group's to check.
        if pt not in p.entries and prefix is None:
            raise SendError("incompatible: peer %s does not know message %s (packet_type %d): its schemas do not have it"
                            % (p.address, cls.message_name, pt))
        p.batch.append(rec)
        p.batch_bytes += len(rec)

    def broadcast_message(self, msg):
        """Queues `msg` for every peer whose handshake completed; returns how many accepted it."""
        n = 0
        for p in list(self._peers.values()):
            if p.hello is None or p.closing or p.group is not None:
                continue
            if getattr(type(msg), "packet_type", None) not in p.entries:
                self.stats["unknown_type_skipped"] += 1
                continue
            try:
                self._send(p, msg)
                n += 1
            except SendError:
                pass
        return n

    def disconnect(self, peer=None):
        """Closes one peer (or every outgoing connection) after what is queued for it was written."""
        targets = [self._peers.get(peer.id)] if peer is not None else [p for p in self._peers.values() if p.outgoing]
        for p in targets:
            if p is not None and not p.closing:
                p.batch.append(wire.record(wire.CLOSE, b"disconnect() called"))
                p.closing = True
                p.close_deadline = time.monotonic() + 1.0
        self._network_out()

    def close(self):
        """Closes every connection (after a `close` record and what was queued, at most 1 s) and the listener."""
        for p in list(self._peers.values()):
            if p.sock is not None and not p.closing:
                p.batch.append(wire.record(wire.CLOSE, b"closed"))
                p.closing = True
        end = time.monotonic() + 1.0
        while any(p.outbuf or p.batch for p in self._peers.values()) and time.monotonic() < end:
            self._network_out()
            if any(p.outbuf for p in self._peers.values()):
                time.sleep(0.001)
        for p in list(self._peers.values()):
            self._close(p)
        for h in list(self._handshakes):
            self._end_handshake(h)
        if self._listener is not None:
            self._selector.unregister(self._listener)
            self._listener.close()
            self._listener = None

    # ------------------------------------------------------------------------------- remote groups

    def join_as_group(self, host, port, name):
        """Connects to a C++ main group and hosts group `name` there (its NetworkOptions::remote_groups
        must admit it). Blocks (ticking the network) until join_ack; NetworkError with the reason if refused.
        Then messages from the main group arrive with ``Sender("group", 0, "__main__")``; reply with
        ``queue_message_to_group(sender, msg)`` or ``queue_message_to_group("__main__", msg)``."""
        self.group_name = name
        try:
            sender = self.connect(host, port)
        except NetworkError:
            self.group_name = ""
            raise
        p = self._peers[sender.id]
        p.group = MAIN_GROUP
        p.batch.append(wire.record(wire.JOIN_GROUP, wire.encode_name(name)))
        self._main = p
        self._server = False
        deadline = time.monotonic() + max(self.options.connect_timeout, self.options.hello_timeout)
        while p.join_result is None and time.monotonic() < deadline:
            self._network_out()
            self._select(0.05)
            self._network_in(0)
        if p.join_result is not True:
            reason = p.join_result or "no join_ack within %.0f s" % (deadline - p.started)
            self._close(p)
            self._main = None
            raise NetworkError("cannot join as group '%s': %s" % (name, reason))
        return Sender("group", 0, MAIN_GROUP)

    def queue_message_to_group(self, group, msg):
        """In a node (join_as_group): sends `msg` to the main group ("__main__") or, relayed by it, to
        another group by name (`group` may be a Sender from a handler)."""
        if isinstance(group, Sender):
            group = group.name or MAIN_GROUP
        if self._main is None or self._main.closing or self._main.bye or self._main.sock is None:
            raise SendError("peer_gone: not joined to a main group")
        # route applies to the records after it in its frame: route, the record, route back to main.
        prefix = None if group == MAIN_GROUP else wire.record(wire.ROUTE, wire.encode_name(group))
        self._send(self._main, msg, prefix)
        if prefix is not None:
            self._main.batch.append(wire.record(wire.ROUTE, wire.encode_name(MAIN_GROUP)))

    # ------------------------------------------------------------------------------------ internals

    def _select(self, timeout):
        try:
            return self._selector.select(timeout)
        except (OSError, ValueError):
            return []

    def _network_in(self, timeout):
        events = self._select(timeout) if (self._listener or self._peers) else []
        for key, _ in events:
            if key.data is None:
                self._accept()
            elif isinstance(key.data, _KeyHandshake):
                self._advance_handshake(key.data)
            else:
                self._read(key.data)
        now = time.monotonic()
        o = self.options
        for h in list(self._handshakes):
            if now - h.started > o.hello_timeout:
                self._fail_handshake(h, "not finished within %d ms (NetworkOptions::hello_timeout)" % (o.hello_timeout * 1000))
        for p in list(self._peers.values()):
            if p.sock is None:
                continue
            if p.closing or p.bye:
                if p.close_deadline is not None and now > p.close_deadline:
                    self._gone(p, "bye from the main group") if p.bye else self._close(p)
                continue
            if p.hello is None and now - p.started > o.hello_timeout:
                self.stats["hello_timeouts"] += 1
                self._drop(p, "peer_gone", "no complete hello from %s within %d ms (NetworkOptions::hello_timeout)"
                           % (p.address, o.hello_timeout * 1000), bad=False)
            elif now - p.last_recv > o.heartbeat_timeout:
                self.stats["heartbeat_timeouts"] += 1
                self._drop(p, "peer_gone", "nothing arrived from %s for %d ms" % (p.address, (now - p.last_recv) * 1000),
                           bad=False)
            elif p.frame_started is not None and now - p.frame_started > o.frame_timeout:
                self.stats["frame_timeouts"] += 1
                self._drop(p, "peer_gone", "a frame from %s was still incomplete after %d ms"
                           % (p.address, o.frame_timeout * 1000), bad=False)

    def _accept(self):
        while True:
            try:
                s, addr = self._listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return
            if self.options.max_peers and len(self._peers) >= self.options.max_peers:
                self.stats["peers_refused"] += 1
                s.close()
                continue
            if self.options.keys:
                self._start_handshake(s, "%s:%d" % addr[:2])
                continue
            self._add_peer(s, "%s:%d" % addr[:2], False)

    # Listener side of the shared-key handshake: only the handshake's bytes and a deadline until K3
    # verifies; then the connection becomes a peer (sealed).
    def _start_handshake(self, s, address):
        s.setblocking(False)
        h = _KeyHandshake(s, address, _keys.ServerHandshake(self.options.keys))
        self._handshakes.append(h)
        if len(self._handshakes) > max(1, self.options.max_handshakes):
            return self._fail_handshake(h, "too many handshakes in progress (NetworkOptions::max_handshakes is %d)"
                                        % self.options.max_handshakes, _keys.BUSY)
        host = address.rsplit(":", 1)[0]
        if sum(x.address.rsplit(":", 1)[0] == host for x in self._handshakes) > max(1, self.options.max_handshakes_per_address):
            return self._fail_handshake(h, "too many handshakes in progress from %s (NetworkOptions::"
                                        "max_handshakes_per_address is %d)" % (host, self.options.max_handshakes_per_address),
                                        _keys.BUSY)
        self._selector.register(s, selectors.EVENT_READ, h)

    def _advance_handshake(self, h):
        try:
            while h.sock is not None:
                try:
                    data = h.sock.recv(h.want - len(h.buf))  # exactly K1, then K3: the sealed frames stay unread
                except (BlockingIOError, InterruptedError):
                    return
                except OSError as e:
                    return self._fail_handshake(h, "connection reset: %s" % (e.strerror or e))
                if not data:
                    return self._fail_handshake(h, "closed by the other end during the shared-key handshake")
                h.buf += data
                if len(h.buf) < h.want:
                    continue
                if h.k1 is None and h.want == 9:
                    h.want = _keys.ServerHandshake.k1_size(bytes(h.buf))
                elif h.k1 is None:
                    h.k1 = bytes(h.buf)
                    k2 = h.hs.on_hello(h.k1)
                    if h.sock.send(k2) != len(k2):  # 104 bytes into a fresh socket's empty buffer
                        return self._fail_handshake(h, "cannot write the handshake's answer")
                    h.buf, h.want = bytearray(), _keys.K3_BYTES
                else:
                    session = h.hs.on_finish(bytes(h.buf))
                    sock = h.sock
                    self._end_handshake(h, close=False)
                    peer = self._add_peer(sock, h.address, False, session)
                    self._read(peer)  # frames sent right behind K3 may be there already
                    return
        except _keys.SharedKeyError as e:
            self._fail_handshake(h, e.text, e.code)
        except Exception as e:  # noqa: BLE001 - a bug of ours must not escape tick() either
            self._fail_handshake(h, "internal error in the shared-key handshake (please report): %r" % e)

    def _fail_handshake(self, h, why, code=None):
        self.stats["authentication_failures"] += 1
        self.stats["last_authentication_failure"] = why
        if code is not None and h.sock is not None:
            try:
                h.sock.send(_keys.REFUSAL_MAGIC + bytes([code]))
            except OSError:
                pass
        self._log("refused %s: shared-key handshake: %s" % (h.address, why))
        self._end_handshake(h)

    def _end_handshake(self, h, close=True):
        if h in self._handshakes:
            self._handshakes.remove(h)
        if h.sock is not None:
            try:
                self._selector.unregister(h.sock)
            except (KeyError, ValueError):
                pass
            if close:
                h.sock.close()
            h.sock = None

    def _read(self, p):
        limit = self.options.receive_buffer_limit
        got = 0
        while got < limit and p.sock is not None:
            try:
                data = p.sock.recv(min(65536, limit - got + 65536))
            except (BlockingIOError, InterruptedError):
                break
            except OSError as e:
                self._gone(p, "connection reset: %s" % (e.strerror or e))
                return
            if not data:
                if p.inbuf:
                    self._drop(p, "truncated", "the connection ended inside a frame")
                else:
                    self._gone(p, "closed by the peer")
                return
            got += len(data)
            p.last_recv = time.monotonic()
            p.inbuf += data
            try:
                self._frames(p)
            except _Dropped as d:
                if d.refused:  # the other end wants the shared-key handshake: a refusal, not bad input
                    self._log("%s refused this node: %s" % (p.address, d.text))
                    self.queue_message(PeerRefused(p.sender, p.address, p.name, d.text, True))
                    if p is self._main and p.join_result is None:
                        p.join_result = d.text
                    self._close(p)
                else:
                    self._drop(p, d.code, d.text)
                return
            except wire.WireError as e:
                self._drop(p, e.code, e.text)
                return
            except Exception as e:  # noqa: BLE001 - a bug of ours must not escape tick() either
                self._drop(p, "malformed", "internal error while reading this peer's bytes (please report): %r" % e)
                return

    def _frames(self, p):
        buf = p.inbuf
        at = 0
        sealed = p.session is not None
        limit = self.options.max_message_size + (_keys.TAG_BYTES if sealed else 0)
        while len(buf) - at >= 8 and p.sock is not None and not p.closing:
            length, sg, version, flags = wire.FRAME_HEADER.unpack_from(buf, at)
            if sg != b"SG" or version != 1 or flags != 0:
                head = bytes(buf[at:at + 8])
                if head in (_keys.REFUSAL_MAGIC, _keys.K2_MAGIC):
                    raise _Dropped("not_admitted", "%s requires the shared-key handshake (NetworkOptions::keys)"
                                   % p.address, refused=True)
                if head == _keys.K1_MAGIC:
                    self.stats["authentication_failures"] += 1
                    raise _Dropped("not_admitted", "%s sent a shared-key hello; this listener has no "
                                   "NetworkOptions::keys" % p.address)
                raise _Dropped("malformed", "not a sage frame header")
            if length > limit:
                raise _Dropped("too_large", "a frame of %d bytes; max_message_size is %d"
                               % (length - (_keys.TAG_BYTES if sealed else 0), self.options.max_message_size))
            if len(buf) - at - 8 < length:
                break
            if sealed:
                if length < _keys.TAG_BYTES:
                    raise _Dropped("malformed", "a sealed frame from %s of %d bytes, shorter than its tag"
                                   % (p.address, length))
                try:
                    body = p.session.receive.open(buf[at:at + 8], buf[at + 8:at + 8 + length])
                except _keys.SharedKeyError as e:
                    raise _Dropped("malformed", "a sealed frame from %s %s" % (p.address, e.text)) from None
            else:
                body = bytes(buf[at + 8:at + 8 + length])
            at += 8 + length
            self.stats["frames_received"] += 1
            self._frame(p, body)
        del buf[:at]
        # frame_timeout counts from the first byte of the frame still incomplete.
        if not buf:
            p.frame_started = None
        elif at > 0 or p.frame_started is None:
            p.frame_started = time.monotonic()

    def _frame(self, p, body):
        origin = Sender("group", 0, MAIN_GROUP) if p is self._main else p.sender
        for ptype, payload in wire.records(body):
            if p.sock is None or p.closing:
                return
            self.stats["records_received"] += 1
            if p.hello is None and ptype != wire.HELLO:
                raise _Dropped("malformed", "the first record is not a hello")
            if ptype == wire.HELLO:
                if p.hello is not None:
                    raise _Dropped("malformed", "a second hello")
                self._hello(p, wire.decode_hello(payload))
            elif ptype == wire.HEARTBEAT:
                pass
            elif ptype == wire.CLOSE:
                self._gone(p, "closed by the peer: " + bytes(payload).decode("utf-8", "replace"))
                return
            elif ptype == wire.ERROR:
                kind, text = wire.decode_error(payload)
                if kind == wire.ERROR_FULL:  # the listener is at max_peers: not a refusal of us
                    self._gone(p, "refused by the peer: " + text)
                else:
                    self._refused_by_peer(p, text)
                return
            elif ptype == wire.ANNOUNCE:
                entries, desc = wire.decode_announce(payload)
                p.announce_bytes += len(desc)
                if p.announce_bytes > wire.MAX_DESCRIPTION_BYTES:
                    raise _Dropped("too_large", "announces with more than %d bytes of description"
                                   % wire.MAX_DESCRIPTION_BYTES)
                if not desc:  # checked as a hello's: entries need the description that lists them
                    self._check_refuse(p, "peer %s announces %d message types but sent no schema description to "
                                          "check them" % (p.address, len(entries)))
                    return
                d, err = schema.parse(desc)
                if d is None:
                    raise _Dropped("malformed", "the schema description from peer %s does not parse: %s" % (p.address, err))
                if sorted(pt for pt, _ in d.messages) != sorted(entries):
                    raise _Dropped("malformed", "the schema table from peer %s does not list the wire messages of its "
                                                "description" % p.address)
                if not self._check(p, desc):
                    return
                p.entries.update(entries)
            elif ptype == wire.JOIN_ACK and p is self._main:
                p.join_result = True
            elif ptype == wire.FROM and p is self._main:
                name = wire.decode_name(payload)
                origin = Sender("group", 0, MAIN_GROUP) if name == MAIN_GROUP else Sender("group", 1, name)
            elif ptype == wire.BYE and p is self._main:
                # Handle what arrived before it (queued), answer bye_ack with what actors queue, then
                # wait for the main group to close the connection (heartbeat_timeout at most).
                p.bye = True
                p.batch.append(wire.record(wire.BYE_ACK, b""))
                p.close_deadline = time.monotonic() + self.options.heartbeat_timeout
            elif ptype == wire.JOIN_GROUP and p is not self._main:
                name = wire.decode_name(payload)
                text = "not admitted: group '%s': a Python listener does not host remote groups" % name
                self.stats["admissions_refused"] += 1
                p.batch = [wire.record(wire.ERROR, wire.encode_error(text))]
                self._log("refused %s: %s" % (p.address, text))
                if p.hello is not None:
                    self.queue_message(PeerDisconnected(p.sender, p.address, p.name, "incompatible", text))
                p.closing = True
                p.close_deadline = time.monotonic() + 1.0
                self._network_out()
                return
            elif ptype in wire.CONTROL or ptype < wire.MIN_USER_PACKET_TYPE:
                raise _Dropped("unknown_packet_type", "control packet %d is not expected here" % ptype)
            else:
                cls = self.types.get(ptype)
                if cls is None:
                    raise _Dropped("unknown_packet_type", "packet_type %d is not a registered message" % ptype)
                try:
                    msg = cls.decode(payload)
                except flat.DecodeError as e:
                    raise _Dropped("verify_failed", "%s (packet_type %d) does not verify: %s"
                                   % (cls.message_name, ptype, e)) from None
                self.queue.append((msg, origin))

    def _check(self, p, description):
        entries, mine = self._description()
        refused = schema.check_descriptions(mine, description, "this node", "peer " + p.address)
        if refused is None:
            return True
        code, text = refused
        if code == "malformed":
            raise _Dropped("malformed", text)
        self.stats["handshakes_refused"] += 1
        p.batch = [wire.record(wire.ERROR, wire.encode_error(text))]
        self.queue_message(PeerRefused(p.sender, p.address, p.name, text, False))
        self._log("refused %s: incompatible peer: %s" % (p.address, text))
        p.closing = True
        p.close_deadline = time.monotonic() + 1.0
        p.join_result = p.join_result or text
        self._network_out()
        return False

    def _hello(self, p, h):
        if h.version == 0:
            return self._refuse_version(p, "peer %s speaks protocol 0, which no sage speaks (this build speaks %d)"
                                        % (p.address, wire.PROTOCOL_VERSION))
        if h.version < wire.PROTOCOL_VERSION:
            return self._refuse_version(p, "peer %s speaks protocol %d; upgrade it (this build speaks %d; rolling "
                                           "upgrades work from protocol 2 on)" % (p.address, h.version, wire.PROTOCOL_VERSION))
        if h.version > wire.PROTOCOL_VERSION:
            return self._refuse_version(p, "peer %s speaks protocol %d; upgrade this node (it speaks %d)"
                                        % (p.address, h.version, wire.PROTOCOL_VERSION))
        if not h.description and h.entries:
            return self._refuse_version(p, "peer %s lists %d message types but sent no schema description to check them"
                                        % (p.address, len(h.entries)))
        if h.description:
            d, err = schema.parse(h.description)
            if d is None:
                raise _Dropped("malformed", "the schema description from peer %s does not parse: %s" % (p.address, err))
            if sorted(pt for pt, _ in d.messages) != sorted(h.entries):
                raise _Dropped("malformed", "the schema table from peer %s does not list the wire messages of its "
                                            "description" % p.address)
        p.name = h.name
        if not self._check(p, h.description):
            return
        p.hello = h
        p.entries = dict(h.entries)
        self.queue_message(PeerConnected(p.sender, p.address, p.name, p.outgoing, p.identity))
        held, p.held, p.held_bytes = p.held, [], 0
        for pt, rec in held:
            if pt in p.entries:
                p.batch.append(rec)
            else:
                self.stats["unknown_type_skipped"] += 1
                self._log("not sent to %s: it does not know packet_type %d" % (p.address, pt))

    def _refuse_version(self, p, text):
        self._check_refuse(p, text)

    def _check_refuse(self, p, text):
        self.stats["handshakes_refused"] += 1
        p.batch = [wire.record(wire.ERROR, wire.encode_error(text))]
        self.queue_message(PeerRefused(p.sender, p.address, p.name, text, False))
        self._log("refused %s: incompatible peer: %s" % (p.address, text))
        p.closing = True
        p.close_deadline = time.monotonic() + 1.0
        self._network_out()

    def _refused_by_peer(self, p, text):
        self._log("%s refused this node: %s" % (p.address, text))
        p.join_result = "refused by the peer: " + text
        if p.hello is not None or p.group is None:
            self.queue_message(PeerRefused(p.sender, p.address, p.name, text, True))
        self._close(p)

    def _network_out(self):
        now = time.monotonic()
        for p in list(self._peers.values()):
            if p.sock is None:
                continue
            if not p.batch and not p.outbuf and not p.closing and not p.bye and p.hello is not None \
                    and now - p.last_send >= self.options.heartbeat_interval:
                p.batch.append(wire.record(wire.HEARTBEAT, b""))
            if p.batch:
                body = bytearray()
                limit = self.options.max_message_size
                frame = p.session.send.seal if p.session is not None else wire.frame
                for rec in p.batch:
                    if body and len(body) + len(rec) > limit:
                        p.outbuf += frame(bytes(body))
                        body = bytearray()
                    body += rec
                if body:
                    p.outbuf += frame(bytes(body))
                self.stats["records_sent"] += len(p.batch)
                p.batch = []
                p.batch_bytes = 0
            if p.outbuf:
                try:
                    n = p.sock.send(p.outbuf)
                    del p.outbuf[:n]
                    p.last_send = now
                except (BlockingIOError, InterruptedError):
                    pass
                except OSError as e:
                    self._gone(p, "connection reset: %s" % (e.strerror or e))
                    continue
                events = selectors.EVENT_READ | (selectors.EVENT_WRITE if p.outbuf else 0)
                try:
                    self._selector.modify(p.sock, events, p)
                except (KeyError, ValueError):
                    pass
            if p.closing and not p.outbuf:
                self._close(p)

    def _gone(self, p, why):
        if p.bye:
            why = "bye from the main group"
        if p.hello is not None and not p.closing:
            self.queue_message(PeerDisconnected(p.sender, p.address, p.name, "peer_gone", why))
        if p is self._main and p.join_result is None:
            p.join_result = "the main group closed the connection: " + why
        self._close(p)

    def _drop(self, p, code, text, bad=True):
        if bad:
            self.stats["bad_input"] += 1
            self.stats["last_bad_input"] = "%s: %s" % (code, text)
        self._log("dropped %s: %s: %s" % (p.address, code.replace("_", " "), text))
        if p.hello is not None:
            self.queue_message(PeerDisconnected(p.sender, p.address, p.name, code, text))
        if p is self._main and p.join_result is None:
            p.join_result = text
        self._close(p)

    def _close(self, p):
        if p.sock is not None:
            try:
                self._selector.unregister(p.sock)
            except (KeyError, ValueError):
                pass
            p.sock.close()
            p.sock = None
        self._peers.pop(p.sender.id, None)
        if self._server is p:
            self._server = None

    def _log(self, line):
        now = time.monotonic()
        window = self._drop_log
        if now - window[0] > self.options.drop_log_interval:
            if window[2]:
                sys.stderr.write("sagepeer: network: %d more lines not logged in the last %d ms\n"
                                 % (window[2], self.options.drop_log_interval * 1000))
            window[:] = [now, 0, 0]
        if window[1] < self.options.drop_log_burst:
            window[1] += 1
            sys.stderr.write("sagepeer: network: " + line.replace("\n", "\\n") + "\n")
        else:
            window[2] += 1
