"""SecretBox must never hand back a wrong or empty plaintext, and never leak more than a hint."""

from __future__ import annotations

import base64
import os
import stat
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from interface.secret_box import SecretBox, SecretDecryptionError, SecretKeyError

KEY = bytes(range(32))
BOX = SecretBox(KEY)
AD = b"group-1\x00openai"


@given(plaintext=st.text(), associated_data=st.binary(max_size=64))
def test_round_trip(plaintext: str, associated_data: bytes) -> None:
    token = BOX.encrypt(plaintext, associated_data=associated_data)
    assert token.startswith("v1:")
    assert BOX.decrypt(token, associated_data=associated_data) == plaintext


def test_same_plaintext_encrypts_differently() -> None:
    assert BOX.encrypt("sk-same") != BOX.encrypt("sk-same")


@given(plaintext=st.text(min_size=1), position=st.integers(min_value=0), flip=st.integers(1, 255))
def test_tampering_is_detected(plaintext: str, position: int, flip: int) -> None:
    blob = bytearray(base64.urlsafe_b64decode(BOX.encrypt(plaintext, associated_data=AD)[3:]))
    blob[position % len(blob)] ^= flip
    with pytest.raises(SecretDecryptionError):
        BOX.decrypt("v1:" + base64.urlsafe_b64encode(bytes(blob)).decode(), associated_data=AD)


@pytest.mark.parametrize("token", ["", "sk-plain", "v1:", "v1:!!!", "v1:AAAA", "v2:" + "A" * 40])
def test_malformed_tokens_raise(token: str) -> None:
    with pytest.raises(SecretDecryptionError):
        BOX.decrypt(token)


def test_ciphertext_bound_to_associated_data() -> None:
    token = BOX.encrypt("sk-secret-value", associated_data=b"group-1\x00openai")
    with pytest.raises(SecretDecryptionError):
        BOX.decrypt(token, associated_data=b"group-2\x00openai")
    with pytest.raises(SecretDecryptionError):
        BOX.decrypt(token)


def test_wrong_key_raises() -> None:
    token = BOX.encrypt("sk-secret-value", associated_data=AD)
    with pytest.raises(SecretDecryptionError):
        SecretBox(os.urandom(32)).decrypt(token, associated_data=AD)


def test_key_must_be_256_bits() -> None:
    with pytest.raises(SecretKeyError):
        SecretBox(b"short")


def test_base64_setting_is_the_raw_key() -> None:
    box, message = SecretBox.from_setting(base64.urlsafe_b64encode(KEY).decode(), key_file=None)
    assert "KASAL_SECRET_KEY" in message
    assert BOX.decrypt(box.encrypt("sk-x")) == "sk-x"


def test_passphrase_derivation_is_deterministic() -> None:
    first, _ = SecretBox.from_setting("correct horse battery staple", key_file=None)
    second, _ = SecretBox.from_setting("correct horse battery staple", key_file=None)
    other, _ = SecretBox.from_setting("correct horse battery stapler", key_file=None)
    token = first.encrypt("sk-passphrase")
    assert second.decrypt(token) == "sk-passphrase"
    with pytest.raises(SecretDecryptionError):
        other.decrypt(token)


def test_setting_wins_over_key_file(tmp_path: Path) -> None:
    key_file = tmp_path / "secret.key"
    SecretBox.from_setting("a passphrase", key_file=key_file)
    assert not key_file.exists()


def test_key_file_created_private_and_reused(tmp_path: Path) -> None:
    key_file = tmp_path / "nested" / "secret.key"
    box, created = SecretBox.from_setting(None, key_file=key_file)
    assert "generated" in created
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert list(key_file.parent.iterdir()) == [key_file]
    again, reused = SecretBox.from_setting(None, key_file=key_file)
    assert "using" in reused and "warning" not in reused
    assert again.decrypt(box.encrypt("sk-file", associated_data=AD), associated_data=AD) == "sk-file"


def test_loose_key_file_permissions_are_reported(tmp_path: Path) -> None:
    key_file = tmp_path / "secret.key"
    SecretBox.from_setting(None, key_file=key_file)
    key_file.chmod(0o644)
    _, message = SecretBox.from_setting(None, key_file=key_file)
    assert "warning" in message


def test_corrupt_key_file_is_not_overwritten(tmp_path: Path) -> None:
    key_file = tmp_path / "secret.key"
    key_file.write_text("not a key\n")
    with pytest.raises(SecretKeyError):
        SecretBox.from_setting(None, key_file=key_file)
    assert key_file.read_text() == "not a key\n"


def test_no_key_configured_raises() -> None:
    with pytest.raises(SecretKeyError, match="KASAL_SECRET_KEY"):
        SecretBox.from_setting(None, key_file=None)


@given(plaintext=st.text())
def test_hint_reveals_at_most_four_chars(plaintext: str) -> None:
    hint = SecretBox.hint(plaintext)
    if len(plaintext) < 12:
        assert hint == ""
    else:
        assert hint == "\u2026" + plaintext[-4:]


def test_hint_examples() -> None:
    assert SecretBox.hint("sk-abcdefgh1234") == "\u2026" + "1234"
    assert SecretBox.hint("short-key") == ""
