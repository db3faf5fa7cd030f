"""sagepeer.keys: sage's shared-key mode for tcp:// (docs/wire-format.md "Shared-key mode",
docs/security.md "Shared keys"), written from those pages.

Contracts:
- SharedKey: an id (1..64 bytes of UTF-8, not secret; the other end's identity is "key:" + id) and 32
  secret bytes, as the C++ sage::SharedKey (generate, from_hex, from_file, hex).
- ClientHandshake / ServerHandshake: the three messages K1 (client), K2 or a refusal (listener), K3
  (client), byte-level only (no sockets, no clock). Each step returns bytes to send or raises
  SharedKeyError with the C++ runtime's reason text; ``code`` of a listener-side failure is the refusal
  code to send (None: close without an answer).
- Sealer: one direction's frames, ChaCha20-Poly1305 (IETF) under that direction's key, the 8-byte
  frame header as associated data, the nonce 4 zero bytes + the frame number (u64 little endian).
  Its ``open`` raises SharedKeyError for a frame that does not open; a stream that lost one frame cannot be
  trusted again, so the caller drops the connection.
- All cryptography is libsodium's through Debian's python3-nacl (nacl.bindings) and Python's hmac /
  hashlib; nothing is hand-written here.
"""

import hashlib
import hmac
import os
import struct

try:
    from nacl import bindings as _sodium
    from nacl.exceptions import CryptoError as _CryptoError
except ImportError:  # reported when keys are used, so plain sagepeer needs no python3-nacl
    _sodium = None
    _CryptoError = Exception

KEY_BYTES = 32
MAX_KEY_ID = 64
K1_MAGIC, K2_MAGIC, K3_MAGIC, REFUSAL_MAGIC = b"SAGEK1H\0", b"SAGEK1S\0", b"SAGEK1C\0", b"SAGEK1X\0"
K1_FIXED = 8 + 1 + 32 + 32 + 32  # K1 without the key id
K2_BYTES = 8 + 32 + 32 + 32
K3_BYTES = 8 + 32
REFUSAL_BYTES = 8 + 1
TAG_BYTES = 16

UNKNOWN_KEY, BAD_PROOF, NOT_K1, BUSY = 1, 2, 3, 4
REFUSALS = {
    UNKNOWN_KEY: "the listener does not know this key id",
    BAD_PROOF: "the key does not match the listener's key of that id",
    NOT_K1: "the listener speaks another version of the shared-key handshake",
    BUSY: "the listener has too many handshakes in progress",
}


def refusal_text(code):
    return REFUSALS.get(code, "refused (code %d)" % code)


def _need_nacl():
    if _sodium is None:
        raise RuntimeError("sagepeer: shared keys need Debian's python3-nacl (apt-get install python3-nacl)")


class SharedKeyError(Exception):
    """A handshake step or a sealed frame failed; ``text`` says why, ``code`` is the refusal to send."""

    def __init__(self, text, code=None):
        super().__init__(text)
        self.text, self.code = text, code


class SharedKey:
    """A shared key: ``id`` (str, 1..64 UTF-8 bytes) and ``bytes`` (32 secret bytes)."""
    __slots__ = ("id", "bytes")

    def __init__(self, id_, key):
        raw = id_.encode("utf-8") if isinstance(id_, str) else b""
        if not isinstance(id_, str) or not 1 <= len(raw) <= MAX_KEY_ID:
            raise ValueError("a shared key id is 1..%d bytes of UTF-8, not %r" % (MAX_KEY_ID, id_))
        key = bytes(key)
        if len(key) != KEY_BYTES:
            raise ValueError("shared key '%s' has %d bytes; a shared key is %d" % (id_, len(key), KEY_BYTES))
        self.id, self.bytes = id_, key

    @classmethod
    def generate(cls, id_):
        return cls(id_, os.urandom(KEY_BYTES))

    @classmethod
    def from_hex(cls, id_, text):
        """64 hex digits (surrounding whitespace ignored); ValueError otherwise."""
        text = text.strip()
        if len(text) != 2 * KEY_BYTES or any(c not in "0123456789abcdefABCDEF" for c in text):
            raise ValueError("shared key '%s' is not %d hex digits" % (id_, 2 * KEY_BYTES))
        return cls(id_, bytes.fromhex(text))

    @classmethod
    def from_file(cls, id_, path):
        """A file holding 64 hex digits (as the C++ SharedKey::hex() and SharedKey.hex() write them)."""
        try:
            with open(path, encoding="ascii", errors="replace") as f:
                text = f.read(4096)
        except OSError as e:
            raise ValueError("cannot read shared key '%s' from %s: %s" % (id_, path, e.strerror or e)) from None
        try:
            return cls.from_hex(id_, text)
        except ValueError as e:
            raise ValueError("%s (in %s)" % (e, path)) from None

    def hex(self):
        return self.bytes.hex()

    def __repr__(self):  # never the secret
        return "SharedKey(%r)" % self.id


def _mac(key, label, *parts):
    return hmac.new(key, label + b"".join(parts), hashlib.sha256).digest()


def _direction_key(key, label, kx_key, k1, k2):
    return hashlib.blake2b(label + kx_key + k1 + k2, key=key, digest_size=32).digest()


class Session:
    """What a finished handshake gives: the sealers of both directions and the key's id."""
    __slots__ = ("send", "receive", "key_id")

    def __init__(self, send_key, receive_key, key_id):
        self.send, self.receive, self.key_id = Sealer(send_key), Sealer(receive_key), key_id


class ClientHandshake:
    """The connecting side: ``hello`` (K1) to send, then ``on_reply(K2 or refusal)`` -> (Session, K3)."""

    def __init__(self, key):
        _need_nacl()
        self.key = key
        self._pk, self._sk = _sodium.crypto_kx_keypair()
        kid = key.id.encode("utf-8")
        body = K1_MAGIC + bytes([len(kid)]) + kid + self._pk + os.urandom(32)
        self.hello = body + _mac(key.bytes, b"sage k1 hello", body)

    def on_reply(self, reply):
        if len(reply) == REFUSAL_BYTES and reply.startswith(REFUSAL_MAGIC):
            raise SharedKeyError("shared key '%s' refused: %s" % (self.key.id, refusal_text(reply[8])))
        if len(reply) != K2_BYTES or not reply.startswith(K2_MAGIC):
            raise SharedKeyError("the other end did not answer the shared-key handshake (is it listening with "
                            "NetworkOptions::keys?)")
        if not hmac.compare_digest(_mac(self.key.bytes, b"sage k1 server", self.hello, reply[:-32]), reply[-32:]):
            raise SharedKeyError("the other end does not hold shared key '%s'" % self.key.id)
        try:
            rx, tx = _sodium.crypto_kx_client_session_keys(self._pk, self._sk, reply[8:40])
        except _CryptoError:
            raise SharedKeyError("the other end's key exchange value is not valid") from None
        k3 = K3_MAGIC + _mac(self.key.bytes, b"sage k1 client", self.hello, reply)
        k = self.key.bytes
        return Session(_direction_key(k, b"sage k1 c2s", tx, self.hello, reply),
                       _direction_key(k, b"sage k1 s2c", rx, self.hello, reply), self.key.id), k3


class ServerHandshake:
    """The listening side, fed the bytes it asked for (``want``): K1 -> K2, then K3 -> Session."""

    def __init__(self, keys):
        _need_nacl()
        self.keys = {k.id.encode("utf-8"): k for k in keys}
        self.k1 = self.k2 = None
        self.key = None

    @staticmethod
    def k1_size(head):
        """K1's size from its first 9 bytes; SharedKeyError (refusal 3) if they cannot start a K1."""
        if not head.startswith(K1_MAGIC):
            raise SharedKeyError("the other end sent no shared-key hello (a sage peer without NetworkOptions::keys, "
                            "or another protocol)", NOT_K1)
        n = head[8]
        if not 1 <= n <= MAX_KEY_ID:
            raise SharedKeyError("a shared-key hello with a key id of the wrong length", NOT_K1)
        return K1_FIXED + n

    def on_hello(self, k1):
        k1 = bytes(k1)
        kid = k1[9:9 + k1[8]]
        key = self.keys.get(kid)
        if key is None:
            raise SharedKeyError("unknown key id", UNKNOWN_KEY)
        if not hmac.compare_digest(_mac(key.bytes, b"sage k1 hello", k1[:-32]), k1[-32:]):
            raise SharedKeyError("the hello's MAC does not verify under shared key '%s'" % key.id, BAD_PROOF)
        self.key, self.k1 = key, k1
        self._pk, self._sk = _sodium.crypto_kx_keypair()
        self._client_pk = k1[9 + len(kid):9 + len(kid) + 32]
        body = K2_MAGIC + self._pk + os.urandom(32)
        self.k2 = body + _mac(key.bytes, b"sage k1 server", k1, body)
        return self.k2

    def on_finish(self, k3):
        k3 = bytes(k3)
        if len(k3) != K3_BYTES or not k3.startswith(K3_MAGIC) or not hmac.compare_digest(
                _mac(self.key.bytes, b"sage k1 client", self.k1, self.k2), k3[8:]):
            raise SharedKeyError("the client's finish does not prove shared key '%s'" % self.key.id)
        try:
            rx, tx = _sodium.crypto_kx_server_session_keys(self._pk, self._sk, self._client_pk)
        except _CryptoError:
            raise SharedKeyError("the client's key exchange value is not valid") from None
        k = self.key.bytes
        # The client's tx is our rx.
        return Session(_direction_key(k, b"sage k1 s2c", tx, self.k1, self.k2),
                       _direction_key(k, b"sage k1 c2s", rx, self.k1, self.k2), self.key.id)


class Sealer:
    """One direction of a sealed stream: frame n uses nonce 0^4 | n (u64 LE)."""
    __slots__ = ("_key", "_n")

    def __init__(self, key):
        self._key, self._n = key, 0

    def _nonce(self):
        nonce = b"\0\0\0\0" + struct.pack("<Q", self._n)
        self._n += 1
        return nonce

    def seal(self, body):
        """A whole sealed frame (header with length = len(body) + 16, then ciphertext and tag)."""
        header = struct.pack("<I", len(body) + TAG_BYTES) + b"SG\x01\x00"
        return header + _sodium.crypto_aead_chacha20poly1305_ietf_encrypt(bytes(body), header, self._nonce(), self._key)

    def open(self, header, sealed):
        """The plain body of the next frame; SharedKeyError if it does not open."""
        try:
            return _sodium.crypto_aead_chacha20poly1305_ietf_decrypt(bytes(sealed), bytes(header), self._nonce(),
                                                                    self._key)
        except _CryptoError:
            raise SharedKeyError("does not open under the session key (tampered, replayed, reordered or injected)") from None
