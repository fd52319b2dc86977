"""CURVE keys and the control port's bind policy.

``caxton keys generate`` writes a CurveZMQ key pair with :func:`zmq.auth.create_certificates`:
``NAME.key`` (public, safe to copy) and ``NAME.key_secret`` (secret, keep it private). A node
configured with a server secret key and an allow-list directory admits only clients whose
public ``.key`` file is in that directory.

Policy: the control port binds loopback by default; binding any other address without CURVE
is refused (:class:`InsecureBind`) unless the operator passes ``insecure=True``.
"""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import zmq
import zmq.auth

from caxton.errors import CaxtonError, ErrorCode


class InsecureBind(CaxtonError):
    """Binding a non-loopback address without CURVE was refused."""

    code = ErrorCode.UNAUTHORIZED


class KeyFileError(CaxtonError):
    """A CURVE key file is missing or unreadable."""

    code = ErrorCode.INVALID_ARGUMENT


@dataclass(frozen=True, slots=True)
class KeyPair:
    """Where a generated key pair was written.

    Attributes:
        public: The ``.key`` file (public key; copy it to allow-lists).
        secret: The ``.key_secret`` file (public and secret key; keep it private).
    """

    public: Path
    secret: Path


@dataclass(frozen=True, slots=True)
class CurveServerConfig:
    """CURVE settings of a listening socket (control port or event stream).

    Attributes:
        secret_key_file: The server's ``.key_secret`` file.
        allow_dir: Directory of allow-listed client public ``.key`` files.
    """

    secret_key_file: Path
    allow_dir: Path


@dataclass(frozen=True, slots=True)
class CurveClientConfig:
    """CURVE settings of a client socket.

    Attributes:
        server_key_file: The server's public ``.key`` file (or its ``.key_secret``).
        client_key_file: This client's ``.key_secret`` file.
    """

    server_key_file: Path
    client_key_file: Path


def generate_keys(directory: str | os.PathLike[str], name: str = "client") -> KeyPair:
    """Generate a CURVE key pair into ``directory`` (created if needed).

    Args:
        directory: Where to write ``NAME.key`` and ``NAME.key_secret``.
        name: The key's base name (e.g. ``server`` or a client's name).

    Returns:
        The paths written.

    Raises:
        KeyFileError: The pair already exists (it is never overwritten).
    """
    folder = Path(directory)
    folder.mkdir(parents=True, exist_ok=True)
    public, secret = folder / f"{name}.key", folder / f"{name}.key_secret"
    if public.exists() or secret.exists():
        raise KeyFileError(f"{public} or {secret} already exists; choose another --name or "
                           "remove the old pair first")
    pub, sec = zmq.auth.create_certificates(str(folder), name)
    os.chmod(sec, 0o600)
    return KeyPair(public=Path(pub), secret=Path(sec))


def load_key_pair(path: str | os.PathLike[str]) -> tuple[bytes, bytes | None]:
    """Load a key file written by :func:`generate_keys`.

    Args:
        path: A ``.key`` or ``.key_secret`` file.

    Returns:
        ``(public_key, secret_key)``; the secret is ``None`` for a public ``.key`` file.

    Raises:
        KeyFileError: The file is missing or not a key file.
    """
    try:
        public, secret = zmq.auth.load_certificate(str(path))
    except (OSError, ValueError) as exc:
        raise KeyFileError(f"cannot read CURVE key file {path}: {exc}; create one with "
                           "`caxton keys generate`") from None
    return public, secret


def apply_server_curve(socket: zmq.Socket[bytes], config: CurveServerConfig) -> None:
    """Make ``socket`` a CURVE server with the configured secret key.

    Args:
        socket: The socket, before bind.
        config: The server's CURVE settings.

    Raises:
        KeyFileError: The secret key file has no secret key.
    """
    public, secret = load_key_pair(config.secret_key_file)
    if secret is None:
        raise KeyFileError(f"{config.secret_key_file} holds no secret key; pass the "
                           ".key_secret file")
    if not Path(config.allow_dir).is_dir():
        raise KeyFileError(f"allow-list directory {config.allow_dir} does not exist")
    socket.curve_secretkey = secret
    socket.curve_publickey = public
    socket.curve_server = True


def apply_client_curve(socket: zmq.Socket[bytes], config: CurveClientConfig) -> None:
    """Make ``socket`` a CURVE client of the configured server.

    Args:
        socket: The socket, before connect.
        config: The client's CURVE settings.

    Raises:
        KeyFileError: A key file is missing, or the client file has no secret key.
    """
    server_public, _ = load_key_pair(config.server_key_file)
    public, secret = load_key_pair(config.client_key_file)
    if secret is None:
        raise KeyFileError(f"{config.client_key_file} holds no secret key; pass the client's "
                           ".key_secret file")
    socket.curve_serverkey = server_public
    socket.curve_publickey = public
    socket.curve_secretkey = secret


def is_loopback_endpoint(endpoint: str) -> bool:
    """Tell whether a ZeroMQ endpoint is only reachable from this machine.

    Args:
        endpoint: e.g. ``tcp://127.0.0.1:7460``, ``tcp://*:7460``, ``ipc:///tmp/x``.

    Returns:
        ``True`` for ``ipc://``/``inproc://`` and TCP on a loopback address or ``localhost``.
    """
    if endpoint.startswith(("ipc://", "inproc://")):
        return True
    if not endpoint.startswith("tcp://"):
        return False
    host = urlsplit(endpoint).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_bind_allowed(endpoint: str, *, curve: bool, insecure: bool) -> None:
    """Apply the bind policy.

    Args:
        endpoint: The endpoint about to be bound.
        curve: Whether CURVE is configured for the socket.
        insecure: Whether the operator explicitly allowed an unauthenticated public bind.

    Raises:
        InsecureBind: A non-loopback bind without CURVE and without ``insecure``.
    """
    if curve or insecure or is_loopback_endpoint(endpoint):
        return
    raise InsecureBind(
        f"refusing to bind {endpoint} without CURVE: anyone who can reach it could control "
        "the node. Configure CURVE keys (`caxton keys generate`) or pass --insecure to accept "
        "the risk"
    )


__all__ = [
    "CurveClientConfig",
    "CurveServerConfig",
    "InsecureBind",
    "KeyFileError",
    "KeyPair",
    "apply_client_curve",
    "apply_server_curve",
    "check_bind_allowed",
    "generate_keys",
    "is_loopback_endpoint",
    "load_key_pair",
]
