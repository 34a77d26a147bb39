"""ZeroMQ CURVE keys and authentication for wires between hosts.

`agentrt keys DIR` writes one server and one client key pair and authorises the
client key::

    DIR/server.key  DIR/server.key_secret      the binding side (a node's output)
    DIR/client.key  DIR/client.key_secret      the connecting side (a node's input)
    DIR/authorized/client.key                  public keys a server accepts

Copy DIR to every host. A binding socket becomes a CURVE server and a ZAP
authenticator (one per process) admits only the public keys in
``DIR/authorized``; a peer without an authorised key never completes the
handshake and gets nothing. Plug into the transport::

    Publisher("tcp://0.0.0.0:7600", socket_setup=server_setup("keys"))
    Subscriber("tcp://10.0.0.7:7600", socket_setup=client_setup("keys"))
"""

from __future__ import annotations

import logging
import shutil
import threading
from collections.abc import Callable
from pathlib import Path

import zmq
import zmq.auth
from zmq.auth.thread import ThreadAuthenticator

from agentrt.errors import ConfigError

__all__ = ["make_keys", "server_setup", "client_setup", "stop_authenticator"]

log = logging.getLogger(__name__)

_lock = threading.Lock()
_authenticators: dict[int, ThreadAuthenticator] = {}


def make_keys(directory: str | Path, *, overwrite: bool = False) -> Path:
    """Write a server and a client key pair into ``directory`` and authorise the client key."""
    path = Path(directory)
    if (path / "server.key_secret").exists() and not overwrite:
        raise ConfigError(f"{path} already holds keys: use `agentrt keys {path} --force` to replace them")
    path.mkdir(parents=True, exist_ok=True)
    zmq.auth.create_certificates(str(path), "server")
    zmq.auth.create_certificates(str(path), "client")
    authorized = path / "authorized"
    authorized.mkdir(exist_ok=True)
    shutil.copy(path / "client.key", authorized / "client.key")
    for secret in path.glob("*.key_secret"):
        secret.chmod(0o600)
    return path


def _load(path: Path, secret: bool) -> tuple[bytes, bytes | None]:
    if not path.exists():
        raise ConfigError(f"CURVE key file {path} is missing: run `agentrt keys {path.parent}` and copy it here")
    public, secret_key = zmq.auth.load_certificate(str(path))
    if secret and secret_key is None:
        raise ConfigError(f"{path} holds no secret key: expected the .key_secret file written by `agentrt keys`")
    return public, secret_key


def _authenticator(context: zmq.Context, authorized: Path) -> None:
    with _lock:
        if id(context) in _authenticators:
            return
        if not authorized.is_dir():
            raise ConfigError(f"no authorised keys at {authorized}: run `agentrt keys {authorized.parent}`")
        auth = ThreadAuthenticator(context)
        auth.start()
        auth.configure_curve(domain="*", location=str(authorized))
        _authenticators[id(context)] = auth
        log.debug("CURVE authenticator started, keys from %s", authorized)


def check_keys(keys_dir: str | Path, *, server: bool, client: bool) -> None:
    """ConfigError naming the first key file that a server and/or a client side would miss (reads, starts nothing)."""
    keys = Path(keys_dir)
    if server:
        _load(keys / "server.key_secret", secret=True)
        if not (keys / "authorized").is_dir():
            raise ConfigError(f"no authorised keys at {keys / 'authorized'}: run `agentrt keys {keys}`")
    if client:
        _load(keys / "server.key", secret=False)
        _load(keys / "client.key_secret", secret=True)


def server_setup(keys_dir: str | Path, context: zmq.Context | None = None) -> Callable[[zmq.Socket], None]:
    """A ``socket_setup`` making a binding socket a CURVE server that admits only authorised clients."""
    keys = Path(keys_dir)
    public, secret = _load(keys / "server.key_secret", secret=True)
    _authenticator(context or zmq.Context.instance(), keys / "authorized")

    def setup(socket: zmq.Socket) -> None:
        socket.curve_secretkey = secret
        socket.curve_publickey = public
        socket.curve_server = True

    return setup


def client_setup(keys_dir: str | Path, *, client_key: str | Path | None = None) -> Callable[[zmq.Socket], None]:
    """A ``socket_setup`` for a connecting socket: our client key pair and the server's public key."""
    keys = Path(keys_dir)
    server_public, _ = _load(keys / "server.key", secret=False)
    public, secret = _load(Path(client_key) if client_key else keys / "client.key_secret", secret=True)

    def setup(socket: zmq.Socket) -> None:
        socket.curve_secretkey = secret
        socket.curve_publickey = public
        socket.curve_serverkey = server_public

    return setup


def stop_authenticator(context: zmq.Context | None = None) -> None:
    """Stop this process's authenticator (tests; processes just exit)."""
    with _lock:
        auth = _authenticators.pop(id(context or zmq.Context.instance()), None)
    if auth is not None:
        auth.stop()
