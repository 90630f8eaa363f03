"""The installation's Ed25519 key: created once by ``evidence init``, signs events and checkpoints."""

from __future__ import annotations

import base64
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey


class SigningKeyError(Exception):
    """The signing key is missing or unreadable (run ``evidence init``)."""


def key_id(public_pem: str) -> str:
    """Fingerprint of a public key: SHA-256 of its PEM text, hex."""
    return hashlib.sha256(public_pem.strip().encode()).hexdigest()


@dataclass(frozen=True)
class Signer:
    """Signs with the installation's private key."""

    private_key: Ed25519PrivateKey

    @property
    def public_pem(self) -> str:
        """The public half, PEM (SubjectPublicKeyInfo)."""
        raw = self.private_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return raw.decode().strip()

    @property
    def key_id(self) -> str:
        """Fingerprint recorded with every signature."""
        return key_id(self.public_pem)

    def sign(self, message: bytes) -> str:
        """Base64 signature over ``message``."""
        return base64.b64encode(self.private_key.sign(message)).decode()


def verify_signature(public_pem: str, message: bytes, signature: str) -> bool:
    """Whether ``signature`` (base64) is valid for ``message`` under ``public_pem``."""
    try:
        public = serialization.load_pem_public_key(public_pem.encode())
        if not isinstance(public, Ed25519PublicKey):
            return False
        public.verify(base64.b64decode(signature), message)
    except (InvalidSignature, ValueError):
        return False
    return True


def create_key(path: Path) -> Signer:
    """Create the key file (mode 0600) unless it exists; return its signer either way."""
    if path.exists():
        return load_key(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    private = Ed25519PrivateKey.generate()
    pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(pem)
    return Signer(private)


def load_key(path: Path) -> Signer:
    """Load the signer from ``path``; :class:`SigningKeyError` with a hint when it is absent."""
    try:
        private = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except FileNotFoundError as exc:
        msg = f"signing key {path} not found: run `evidence init` first"
        raise SigningKeyError(msg) from exc
    except ValueError as exc:
        msg = f"signing key {path} is not a valid PEM private key"
        raise SigningKeyError(msg) from exc
    if not isinstance(private, Ed25519PrivateKey):
        msg = f"signing key {path} is not an Ed25519 key"
        raise SigningKeyError(msg)
    return Signer(private)
