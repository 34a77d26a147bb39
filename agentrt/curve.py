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

Refusals are never silent. The server side (`CurveServer`) counts every
refused handshake in ``refused`` and logs the first refusal of each key, once,
as a warning naming the key; a key added to ``DIR/authorized`` later is
admitted without a restart. The client side (`CurveClient` with
``watch=True``) hears why a server would not talk to it: ``refusals()`` says
"refused our key" (the server's authenticator said no) or "the handshake keeps
failing" (this host's ``server.key`` is not that server's). ZeroMQ does not
reconnect after a refusal, so such an input stays silent until the process
restarts: `agentrt.nodehost` fails the node with that line.
"""

from __future__ import annotations

import errno
import itertools
import logging
import shutil
import threading
import time
from pathlib import Path

import zmq
import zmq.auth
from zmq.auth.thread import ThreadAuthenticator
from zmq.utils.monitor import recv_monitor_message

from agentrt.errors import ConfigError

__all__ = ["make_keys", "CurveServer", "CurveClient", "server_setup", "client_setup", "stop_authenticator"]

log = logging.getLogger(__name__)

_lock = threading.Lock()
_authenticators: dict[int, ThreadAuthenticator] = {}
_domains = itertools.count(1)

MAX_LOGGED_KEYS = 256  # distinct refused keys logged per server; past that they are only counted
HANDSHAKE_FAILURES = 3  # handshakes failing in a row (no reason given) before a client calls it a refusal


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


def _authenticator(context: zmq.Context) -> ThreadAuthenticator:
    """This context's ZAP authenticator (one per context), started on first use."""
    with _lock:
        auth = _authenticators.get(id(context))
        if auth is None:
            auth = _start_authenticator(context)
            _authenticators[id(context)] = auth
            log.debug("CURVE authenticator started")
        return auth


def _start_authenticator(context: zmq.Context, wait_s: float = 2.0) -> ThreadAuthenticator:
    """Start a ZAP authenticator; retried while a just-stopped one's endpoint is released.

    Closing a ZeroMQ socket unbinds its ``inproc://zeromq.zap.01`` endpoint on the
    context's reaper thread, a moment later, so a stop followed at once by a start
    (one test after another) can find the address still in use.
    """
    deadline = time.monotonic() + wait_s
    while True:
        auth = ThreadAuthenticator(context)
        try:
            auth.start()
            return auth
        except zmq.ZMQError as error:
            auth.stop()
            if error.errno != errno.EADDRINUSE or time.monotonic() > deadline:
                raise
            time.sleep(0.01)


def _authorized_keys(folder: Path) -> frozenset[bytes]:
    """The z85 public keys in ``folder`` (``*.key`` files written by `agentrt keys`)."""
    return frozenset(zmq.auth.load_certificates(str(folder)))


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


class CurveServer:
    """A ``socket_setup`` making a binding socket a CURVE server that admits only ``DIR/authorized`` keys.

    Each server gets its own ZAP domain, so its refusals are its own: ``refused``
    counts refused handshakes; the first refusal of each key is logged once.
    ``name`` (e.g. the output and address) goes into that log line.
    """

    def __init__(self, keys_dir: str | Path, *, context: zmq.Context | None = None, name: str = "") -> None:
        keys = Path(keys_dir)
        self.public, self._secret = _load(keys / "server.key_secret", secret=True)
        self.authorized = keys / "authorized"
        if not self.authorized.is_dir():
            raise ConfigError(f"no authorised keys at {self.authorized}: run `agentrt keys {keys}`")
        self.name = name
        self.refused = 0
        self._admitted = _authorized_keys(self.authorized)
        self._logged: set[bytes] = set()
        self._count_lock = threading.Lock()  # the authenticator's thread counts, the owner reads
        self.domain = f"agentrt-{next(_domains)}"
        _authenticator(context or zmq.Context.instance()).configure_curve_callback(self.domain, self)

    def __call__(self, socket: zmq.Socket) -> None:
        socket.curve_secretkey = self._secret
        socket.curve_publickey = self.public
        socket.curve_server = True
        socket.zap_domain = self.domain.encode()

    def callback(self, domain: str, client_key: bytes) -> bool:
        """ZAP, on the authenticator's thread: admit ``client_key`` (z85) or refuse it (counted, logged once)."""
        if client_key in self._admitted:
            return True
        try:
            admitted = _authorized_keys(self.authorized)  # a key copied in since start counts at once
        except OSError:
            admitted = self._admitted
        if client_key in admitted:
            self._admitted = admitted
            return True
        with self._count_lock:
            self.refused += 1
            first = client_key not in self._logged and len(self._logged) < MAX_LOGGED_KEYS
            if first:
                self._logged.add(client_key)
        if first:
            log.warning("refused a CURVE client%s: its public key %s is not in %s; to admit it, copy that host's "
                        "client.key into that folder (further refusals of this key are counted, not logged)",
                        f" on {self.name}" if self.name else "", client_key.decode("ascii", "replace"),
                        self.authorized)
        return False


class CurveClient:
    """A ``socket_setup`` for a connecting socket: our client key pair and the server's public key.

    With ``watch``, every socket it sets up gets a monitor, and ``refusals()``
    reports servers that refused to talk to us; ``close()`` closes the monitors
    (after the sockets).
    """

    def __init__(self, keys_dir: str | Path, *, client_key: str | Path | None = None, watch: bool = False) -> None:
        keys = Path(keys_dir)
        self.server_key_file = keys / "server.key"
        self.server_public, _ = _load(self.server_key_file, secret=False)
        self.key_file = Path(client_key) if client_key else keys / "client.key_secret"
        self.public, self._secret = _load(self.key_file, secret=True)
        self.watch = watch
        self._monitors: list[zmq.Socket] = []
        self._failures: dict[str, int] = {}  # endpoint -> handshakes failed in a row

    def __call__(self, socket: zmq.Socket) -> None:
        socket.curve_secretkey = self._secret
        socket.curve_publickey = self.public
        socket.curve_serverkey = self.server_public
        if self.watch:  # before connect, so the first handshake is seen too
            events = (zmq.EVENT_HANDSHAKE_SUCCEEDED | zmq.EVENT_HANDSHAKE_FAILED_AUTH
                      | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL | zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL)
            self._monitors.append(socket.get_monitor_socket(events))

    def refusals(self) -> list[str]:
        """One line per refusal seen since the last call, saying which server and what to do (never blocks)."""
        lines = []
        for monitor in self._monitors:
            while monitor.poll(0):
                try:
                    event = recv_monitor_message(monitor, zmq.NOBLOCK)
                except zmq.Again:
                    break
                line = self._on_event(int(event["event"]), event["endpoint"].decode("utf-8", "replace"))
                if line:
                    lines.append(line)
        return lines

    def _on_event(self, event: int, endpoint: str) -> str:
        if event == zmq.EVENT_HANDSHAKE_SUCCEEDED:
            self._failures.pop(endpoint, None)
            return ""
        if event == zmq.EVENT_HANDSHAKE_FAILED_AUTH:
            return (f"{endpoint} refused this host's CURVE key {self.public.decode('ascii')} ({self.key_file}): "
                    f"copy the matching client.key into keys/authorized/ on that host, or put that host's "
                    f"client key pair here")
        # No reason given: the server could not decrypt our hello, so it holds another key pair than
        # the server.key we have. One failure can be a server going down; several in a row cannot.
        self._failures[endpoint] = self._failures.get(endpoint, 0) + 1
        if self._failures[endpoint] != HANDSHAKE_FAILURES:
            return ""
        return (f"the CURVE handshake with {endpoint} failed {HANDSHAKE_FAILURES} times in a row: "
                f"{self.server_key_file} is probably not that server's public key; copy its keys folder here")

    def close(self) -> None:
        for monitor in self._monitors:
            monitor.close(linger=0)
        self._monitors.clear()


def server_setup(keys_dir: str | Path, context: zmq.Context | None = None, *, name: str = "") -> CurveServer:
    """A ``socket_setup`` making a binding socket a CURVE server that admits only authorised clients."""
    return CurveServer(keys_dir, context=context, name=name)


def client_setup(keys_dir: str | Path, *, client_key: str | Path | None = None, watch: bool = False) -> CurveClient:
    """A ``socket_setup`` for a connecting socket: our client key pair and the server's public key."""
    return CurveClient(keys_dir, client_key=client_key, watch=watch)


def stop_authenticator(context: zmq.Context | None = None) -> None:
    """Stop this process's authenticator (tests; processes just exit)."""
    with _lock:
        auth = _authenticators.pop(id(context or zmq.Context.instance()), None)
    if auth is not None:
        auth.stop()
