"""The zero-egress guard: while it is on, the process connects only to loopback, Unix sockets and on-premises hosts.

A Python audit hook (PEP 578) sees every socket connect, datagram and name lookup before it happens and refuses one
to any other destination with an :class:`EgressError` naming the destination and the code that asked, before a byte
(or a DNS query) leaves. An audit hook cannot be removed, so it is installed once, on first use, and consults the
module's current :class:`EgressPolicy`: turning the guard on and off (per CLI invocation, per stage, per test) swaps
that policy. It is on when the spec sets ``targets.self_hosted_only``, under ``tunewise --no-egress`` and under
``TUNEWISE_NO_EGRESS=1``; the libraries' offline switches (Hugging Face, MLflow telemetry) are set while it is on.

Not covered: child processes (they inherit the offline switches, not the hook), and ``sock.connect((name, port))``
with a host *name*, which CPython resolves before the audit event (the connection itself is still refused; HTTP
clients resolve with ``getaddrinfo`` first, and that lookup is refused).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import ipaddress
import os
import socket
import sys
import threading
from collections.abc import Callable, Iterator
from typing import Any, ParamSpec, TypeVar
from urllib.parse import urlsplit

from tunewise.config import Project
from tunewise.errors import InputError

ENV_VAR = "TUNEWISE_NO_EGRESS"
MLFLOW_TAG = "tunewise.egress_guard"
"""The MLflow tag every tracked run carries: ``on`` or ``off``."""

# Set while the guard is on, restored after: the libraries then fail with their own "offline" message before the
# guard has to refuse anything, and their telemetry does not try to phone home.
OFFLINE_SWITCHES = {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "DO_NOT_TRACK": "true",
}
_TRUE = {"1", "true", "yes", "on", "y", "t"}
_EVENTS = {
    "socket.connect": "a connection to",
    "socket.sendto": "a datagram to",
    "socket.sendmsg": "a message to",
    "socket.getaddrinfo": "a name lookup of",
    "socket.gethostbyname": "a name lookup of",
    "socket.gethostbyname_ex": "a name lookup of",
    "socket.gethostbyaddr": "a reverse lookup of",
    "socket.getnameinfo": "a reverse lookup of",
}
_LOCAL_FAMILIES = {getattr(socket, name) for name in ("AF_UNIX", "AF_NETLINK") if hasattr(socket, name)}
_LOCAL_NAMES = {"", "localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback"}
_LOCAL = object()  # the destination of a Unix or netlink socket, or of an already connected one


class EgressError(InputError):
    """A connection (or name lookup) the zero-egress guard refused, or a spec that would need one."""


@dataclasses.dataclass(frozen=True)
class EgressPolicy:
    """What the guard allows besides loopback and Unix sockets, and why it is on."""

    reason: str
    """Why the guard is on: ``--no-egress``, ``TUNEWISE_NO_EGRESS=1``, ``targets.self_hosted_only in <spec>``."""
    on_premises: frozenset[str] = frozenset()
    """Hosts (names or addresses, lower-case) of the models a spec declares ``on_premises``."""

    def allows(self, host: object) -> bool:
        """Whether a connection to ``host`` (a name, an address, ``None`` for a passive lookup) stays on premises."""
        if host is None:
            return True
        name = _normalize(host)
        if name in _LOCAL_NAMES or name in self.on_premises:
            return True
        address = _address(name)
        if address is None:
            return False
        if address.is_loopback or address.is_unspecified:
            return True
        return str(address) in self.on_premises or any(str(address) in _addresses_of(h) for h in self.on_premises)

    def describe(self) -> str:
        hosts = f", on-premises hosts: {', '.join(sorted(self.on_premises))}" if self.on_premises else ""
        return f"loopback, Unix sockets{hosts}"


_policy: EgressPolicy | None = None
_hook_lock = threading.Lock()
_hook_installed = False


def current() -> EgressPolicy | None:
    """The policy in force, ``None`` when the guard is off."""
    return _policy


def is_on() -> bool:
    return _policy is not None


def label() -> str:
    """``on`` or ``off``: what reports and MLflow runs record."""
    return "on" if _policy is not None else "off"


def requested_by_env() -> bool:
    """Whether ``TUNEWISE_NO_EGRESS`` asks for the guard."""
    return os.environ.get(ENV_VAR, "").strip().lower() in _TRUE


@contextlib.contextmanager
def guard(policy: EgressPolicy) -> Iterator[EgressPolicy]:
    """Put ``policy`` in force (installing the audit hook on first use) with the offline switches; restore after."""
    global _policy
    _install_hook()
    previous, saved = _policy, {key: os.environ.get(key) for key in OFFLINE_SWITCHES}
    os.environ.update(OFFLINE_SWITCHES)
    _policy = policy
    try:
        yield policy
    finally:
        _policy = previous
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def project_policy(project: Project | None) -> EgressPolicy | None:
    """The policy a stage on ``project`` runs under: the one in force plus the project's on-premises hosts, or a new
    one when the spec sets ``targets.self_hosted_only`` or ``TUNEWISE_NO_EGRESS`` is set; ``None`` when none applies.
    """
    if _policy is not None:
        reason = _policy.reason
    elif requested_by_env():
        reason = f"{ENV_VAR}=1"
    elif project is not None and project.spec.targets.self_hosted_only:
        reason = f"targets.self_hosted_only in {project.spec_file or project.root}"
    else:
        return None
    hosts = set(_policy.on_premises) if _policy is not None else set()
    if project is not None:
        for model in project.spec.models.values():
            host = urlsplit(model.base_url).hostname if model.on_premises and model.base_url else None
            if host:
                hosts.add(_normalize(host))
    return EgressPolicy(reason=reason, on_premises=frozenset(hosts))


@contextlib.contextmanager
def project_guard(project: Project | None) -> Iterator[EgressPolicy | None]:
    """The guard a stage on ``project`` needs (see :func:`project_policy`); a remote MLflow store is refused here.

    Raises:
        EgressError: the guard is on and the MLflow tracking URI (spec or ``$MLFLOW_TRACKING_URI``) is not local.
    """
    policy = project_policy(project)
    if policy is None:
        yield None
        return
    if project is not None and project.spec.tracking.uri:
        check_tracking_uri(project.spec.tracking.uri, policy, file=project.spec_file, field="tracking.uri")
    elif os.environ.get("MLFLOW_TRACKING_URI"):
        check_tracking_uri(os.environ["MLFLOW_TRACKING_URI"], policy, field="$MLFLOW_TRACKING_URI")
    with guard(policy):
        yield policy


P = ParamSpec("P")
R = TypeVar("R")


def guarded(stage: Callable[P, R]) -> Callable[P, R]:
    """Run a stage under :func:`project_guard` of its ``project`` argument (the first positional, or keyword)."""

    @functools.wraps(stage)
    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        project = kwargs.get("project", args[0] if args else None)
        with project_guard(project if isinstance(project, Project) else None):
            return stage(*args, **kwargs)

    return run


def check_tracking_uri(
    uri: str, policy: EgressPolicy | None = None, *, file: object = None, field: str | None = None
) -> None:
    """Refuse an MLflow tracking URI that is not local (a file, SQLite, or a server on loopback) under the guard.

    Raises:
        EgressError: the guard is on and ``uri`` names a remote store.
    """
    policy = policy or _policy
    if policy is None or _is_local_uri(uri):
        return
    raise EgressError(
        f"the MLflow tracking URI {_without_credentials(uri)} is not local, and the zero-egress guard is on "
        f"({policy.reason}): track to a SQLite file (the default, with no tracking.uri and no "
        "$MLFLOW_TRACKING_URI) or a server on 127.0.0.1",
        file=str(file) if file is not None else None,
        field=field,
    )


def check_endpoint(what: str, base_url: str, *, file: object = None, field: str | None = None) -> None:
    """Refuse, before any work, an endpoint the guard would refuse at connect time.

    Args:
        what: who would connect, e.g. ``candidate 'gpt' (model 'hosted')``.
        base_url: the endpoint.

    Raises:
        EgressError: the guard is on and the endpoint's host is neither loopback nor on premises.
    """
    policy = _policy
    host = urlsplit(base_url).hostname
    if policy is None or policy.allows(host):
        return
    raise EgressError(
        f"{what} would send data to {host} ({_without_credentials(base_url)}), and the zero-egress guard is on "
        f"({policy.reason}); allowed: {policy.describe()}. Declare the model `on_premises: true` if it runs on "
        "your own machines",
        file=str(file) if file is not None else None,
        field=field,
    )


def _is_local_uri(uri: str) -> bool:
    parts = urlsplit(uri)
    scheme = parts.scheme.lower()
    if scheme in ("", "file", "sqlite") or len(scheme) == 1:  # a path (``c:`` is a Windows drive)
        return True
    if scheme.startswith(("databricks", "uc")):
        return False
    host = parts.hostname
    return host is not None and EgressPolicy(reason="").allows(host)


def _without_credentials(uri: str) -> str:
    parts = urlsplit(uri)
    if parts.username is None and parts.password is None:
        return uri
    return parts._replace(netloc=parts.netloc.rsplit("@", 1)[1]).geturl()


def _normalize(host: object) -> str:
    name = host.decode(errors="replace") if isinstance(host, bytes) else str(host)
    return name.strip().strip("[]").split("%", 1)[0].rstrip(".").lower()


def _address(name: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        address = ipaddress.ip_address(name)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


@functools.cache
def _addresses_of(host: str) -> frozenset[str]:
    """The addresses an on-premises host name resolves to (the connect after its lookup names an address)."""
    if _address(host) is not None:
        return frozenset({host})
    try:
        return frozenset(str(_address(str(info[4][0])) or info[4][0]) for info in socket.getaddrinfo(host, None))
    except OSError:
        return frozenset()


def _install_hook() -> None:
    global _hook_installed
    with _hook_lock:
        if not _hook_installed:
            sys.addaudithook(_audit)
            _hook_installed = True


def _audit(event: str, args: tuple[Any, ...]) -> None:
    if event not in _EVENTS:
        return
    policy = _policy
    if policy is None:
        return
    host, port = _destination(event, args)
    if host is _LOCAL or policy.allows(host):
        return
    destination = f"{host}:{port}" if port is not None else str(host)
    if ":" in str(host) and port is not None:
        destination = f"[{host}]:{port}"
    raise EgressError(
        f"zero-egress guard ({policy.reason}): refused {_EVENTS[event]} {destination} from {_code_path()}; "
        f"allowed: {policy.describe()}"
    )


def _destination(event: str, args: tuple[Any, ...]) -> tuple[Any, Any]:
    """(host, port) the event would reach; ``(_LOCAL, None)`` for a Unix or netlink socket or a connected socket."""
    if event in ("socket.connect", "socket.sendto", "socket.sendmsg"):
        sock, address = args[0], args[1]
        if address is None or getattr(sock, "family", None) in _LOCAL_FAMILIES:
            return _LOCAL, None
        if isinstance(address, tuple) and address:
            return address[0], address[1] if len(address) > 1 else None
        return address, None
    if event == "socket.getaddrinfo":
        return args[0], args[1]
    if event == "socket.getnameinfo":
        sockaddr = args[0]
        return (sockaddr[0], sockaddr[1]) if isinstance(sockaddr, tuple) and len(sockaddr) > 1 else (sockaddr, None)
    return args[0], None


def _code_path() -> str:
    """The innermost tunewise frame and the frame that made the call (or the top three frames), and the thread."""
    frames = []
    frame = sys._getframe(1)
    while frame is not None:
        module = frame.f_globals.get("__name__", "?")
        if module not in (__name__, "socket"):  # socket.py's wrappers say nothing about who asked
            frames.append(f"{module}:{frame.f_lineno} ({frame.f_code.co_name})")
        frame = frame.f_back
    if not frames:
        return "an unknown caller"
    ours = next((f for f in frames if f.startswith("tunewise.")), None)
    path = f"{ours} via {frames[0]}" if ours and ours != frames[0] else ours or " ← ".join(frames[:3])
    thread = threading.current_thread()
    return path if thread is threading.main_thread() else f"{path} in thread {thread.name}"
