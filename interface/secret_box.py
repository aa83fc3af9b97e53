"""Encryption at rest for provider API keys.

AES-256-GCM with a random 96-bit nonce per message.  Callers pass associated
data that names where a ciphertext belongs (e.g. group id and key name), so a
ciphertext copied into another tenant's row fails authentication instead of
decrypting.  Tokens carry a version prefix so the scheme can change later
without guessing what old rows contain.
"""

from __future__ import annotations

import base64
import binascii
import os
import stat
import tempfile
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

KEY_BYTES = 32
NONCE_BYTES = 12
TOKEN_PREFIX = "v1:"
# Fixed and public on purpose: the same KASAL_SECRET_KEY passphrase must derive the
# same key on every machine.  Changing either value makes existing ciphertexts unreadable.
HKDF_SALT = b"kasal-es/secret-box/v1/salt"
HKDF_INFO = b"kasal-es provider api keys"
_HINT_MIN_LENGTH = 12
_HINT_VISIBLE = 4


class SecretBoxError(Exception):
    """Base class, so callers can catch every secret-handling failure at once."""


class SecretKeyError(SecretBoxError):
    """No usable encryption key was configured."""


class SecretDecryptionError(SecretBoxError):
    """A token is malformed, was tampered with, or belongs to another key or context."""


def _b64decode_strict(text: str) -> bytes:
    return base64.b64decode(text.encode("ascii"), altchars=b"-_", validate=True)


def _key_from_setting(secret: str) -> bytes:
    """A urlsafe-base64 32-byte value is the key itself; anything else is a passphrase.

    HKDF does not stretch, so a passphrase is only as strong as its entropy: use a
    long random one (or a generated key) in production.
    """
    try:
        raw = _b64decode_strict(secret.strip())
    except (binascii.Error, UnicodeEncodeError, ValueError):
        raw = b""
    if len(raw) == KEY_BYTES:
        return raw
    if not secret:
        raise SecretKeyError("KASAL_SECRET_KEY is set but empty")
    hkdf = HKDF(algorithm=hashes.SHA256(), length=KEY_BYTES, salt=HKDF_SALT, info=HKDF_INFO)
    return hkdf.derive(secret.encode("utf-8"))


def _load_or_create_key_file(key_file: Path) -> tuple[bytes, str]:
    """Create atomically (write a private temp file, then link): concurrent first starts
    agree on one key and nobody ever reads a half-written file."""
    if not key_file.exists():
        key_file.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(dir=key_file.parent, prefix=f".{key_file.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(base64.urlsafe_b64encode(os.urandom(KEY_BYTES)) + b"\n")
                handle.flush()
                os.fsync(handle.fileno())
            os.link(tmp_name, key_file)
            return _read_key_file(key_file), f"generated a new local encryption key file {key_file}"
        except FileExistsError:
            pass
        finally:
            os.unlink(tmp_name)
    key = _read_key_file(key_file)
    message = f"using local encryption key file {key_file}"
    if stat.S_IMODE(key_file.stat().st_mode) & 0o077:
        message += " (warning: it is readable by other users; chmod 600 it)"
    return key, message


def _read_key_file(key_file: Path) -> bytes:
    text = key_file.read_text(encoding="ascii").strip()
    try:
        key = _b64decode_strict(text)
    except (binascii.Error, ValueError):
        key = b""
    if len(key) != KEY_BYTES:
        raise SecretKeyError(f"{key_file} does not contain a urlsafe-base64 {KEY_BYTES}-byte key")
    return key


class SecretBox:
    """Encrypts and decrypts short secrets with one AES-256-GCM key."""

    def __init__(self, key: bytes) -> None:
        if len(key) != KEY_BYTES:
            raise SecretKeyError(f"SecretBox needs a {KEY_BYTES}-byte key, got {len(key)} bytes")
        self._aead = AESGCM(key)

    @classmethod
    def from_setting(cls, secret: str | None, *, key_file: Path | None) -> tuple[SecretBox, str]:
        """Build from KASAL_SECRET_KEY, else from a local key file (created on first use).

        Returns the box and a message saying where the key came from, for the caller to log.
        """
        if secret is not None:
            return cls(_key_from_setting(secret)), "using the encryption key from KASAL_SECRET_KEY"
        if key_file is not None:
            key, message = _load_or_create_key_file(key_file)
            return cls(key), message
        raise SecretKeyError(
            "no encryption key for stored API keys: set KASAL_SECRET_KEY "
            "(urlsafe-base64 of 32 random bytes, or a long passphrase)"
        )

    def encrypt(self, plaintext: str, *, associated_data: bytes = b"") -> str:
        """Return "v1:<urlsafe-b64 of nonce + ciphertext + tag>"."""
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._aead.encrypt(nonce, plaintext.encode("utf-8"), associated_data)
        return TOKEN_PREFIX + base64.urlsafe_b64encode(nonce + sealed).decode("ascii")

    def decrypt(self, token: str, *, associated_data: bytes = b"") -> str:
        """Raise SecretDecryptionError rather than ever returning a wrong or empty value."""
        if not token.startswith(TOKEN_PREFIX):
            raise SecretDecryptionError("not a SecretBox v1 token")
        try:
            blob = _b64decode_strict(token[len(TOKEN_PREFIX):])
        except (binascii.Error, UnicodeEncodeError, ValueError):
            raise SecretDecryptionError("token is not valid base64") from None
        if len(blob) < NONCE_BYTES + 16:
            raise SecretDecryptionError("token is too short")
        try:
            plain = self._aead.decrypt(blob[:NONCE_BYTES], blob[NONCE_BYTES:], associated_data)
        except InvalidTag:
            raise SecretDecryptionError("wrong key, wrong associated data, or tampered token") from None
        return plain.decode("utf-8")

    @staticmethod
    def hint(plaintext: str) -> str:
        """Last 4 characters, only for values long enough that 4 reveal little."""
        if len(plaintext) < _HINT_MIN_LENGTH:
            return ""
        return "\u2026" + plaintext[-_HINT_VISIBLE:]
