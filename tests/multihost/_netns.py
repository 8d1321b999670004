"""Several hosts on one machine: network namespaces on a private bridge.

Each `Host` is a network namespace with one address on a bridge that lives in
a namespace of its own, so no interface or route of the machine's own
namespace is touched. Every command a host runs gets, in addition:

- its own mount namespace, in which `/tmp` is the host's scratch directory
  (mode 0700, owned by the host's uid) and nothing of the other hosts' files
  is visible by path;
- its own uid and gid (no passwd entry needed: USER and HOME are set);
- its own copy of Python at a host-specific path (the interpreter running the
  tests, bind-mounted read-only under `/media`), with a virtualenv in its
  scratch dir that sees this checkout, so a path that one host sends another
  (an interpreter, a module, a file) is wrong there, as on real machines.

Everything is named with a prefix that carries the test process's pid;
`Network.close` kills every process in the namespaces (by pid, from
`ip netns pids`) and deletes them by name. Stale namespaces of dead test
processes are removed when a new network is made.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import sysconfig
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
#: The private subnet of the bridge; it exists only inside the test's namespaces.
SUBNET = "10.213.7"
_PREFIX = "scmh"
_FIRST_UID = 61000
_network_numbers = itertools.count(1)


def _run(*argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, check=check, timeout=30)


def _site_packages() -> str:
    """The test environment's site-packages: grpcio, protobuf and the rest."""
    return sysconfig.get_paths()["purelib"]


def unavailable_reason() -> str | None:
    """Why namespaces cannot be built here, or None when they can."""
    if sys.platform != "linux":
        return "network namespaces need Linux"
    if os.geteuid() != 0:
        return "building network namespaces needs root"
    for tool in ("ip", "unshare", "setpriv"):
        if shutil.which(tool) is None:
            return f"{tool!r} is not installed"
    probe = f"{_PREFIX}{os.getpid()}probe"
    try:
        made = _run("ip", "netns", "add", probe, check=False)
        if made.returncode != 0:
            return f"'ip netns add' failed: {made.stderr.strip()}"
        inside = _run(
            "ip",
            "netns",
            "exec",
            probe,
            "unshare",
            "--mount",
            "--propagation",
            "private",
            "--",
            "sh",
            "-c",
            "mount -t tmpfs probe /media && ip link set lo up",
            check=False,
        )
        if inside.returncode != 0:
            return f"a namespace cannot mount or configure: {inside.stderr.strip()}"
    finally:
        _run("ip", "netns", "del", probe, check=False)
    return None


def remove_stale_namespaces() -> None:
    """Delete namespaces left by test processes that no longer run."""
    listed = _run("ip", "netns", "list", check=False).stdout
    for line in listed.splitlines():
        name = line.split()[0] if line.strip() else ""
        match = re.fullmatch(rf"{_PREFIX}(\d+)n\d+-\w+", name)
        if match is None:
            continue
        pid = int(match.group(1))
        if pid != os.getpid() and not Path(f"/proc/{pid}").exists():
            _kill_namespace_processes(name)
            _run("ip", "netns", "del", name, check=False)


def _namespace_pids(name: str) -> list[int]:
    out = _run("ip", "netns", "pids", name, check=False).stdout
    return [int(p) for p in out.split() if p.isdigit()]


def _kill_namespace_processes(name: str) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        pids = _namespace_pids(name)
        if not pids:
            return
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        deadline = time.monotonic() + (3.0 if sig == signal.SIGTERM else 5.0)
        while time.monotonic() < deadline and _namespace_pids(name):
            time.sleep(0.05)


class Host:
    """One machine: a network namespace, an address, a uid and a filesystem of its own."""

    def __init__(self, network: Network, role: str, index: int) -> None:
        self.network = network
        self.role = role
        self.netns = f"{network.prefix}-{role}"
        self.ip = f"{SUBNET}.{index + 1}"
        self.uid = _FIRST_UID + index
        #: The host's /tmp, as the test process sees it.
        self.scratch = network.base / role
        self.scratch.mkdir(mode=0o700)
        os.chown(self.scratch, self.uid, self.uid)
        #: Where this host finds Python and the checkout (different on every host).
        self.python_root = f"/media/python-{role}"
        self.checkout = f"/media/sparkctl-{role}"
        self.deps = f"/media/deps-{role}"
        #: The virtualenv's interpreter, as processes on this host see it.
        self.python = f"/tmp/venv-{role}/bin/python"
        self.env: dict[str, str] = {}

    # -- files -------------------------------------------------------------

    def path(self, inner: str) -> Path:
        """The test's view of `inner`, a path under this host's /tmp."""
        relative = Path(inner).relative_to("/tmp")
        return self.scratch / relative

    def write(self, inner: str, data: str | bytes, mode: int = 0o644) -> str:
        """Create a file on this host (owned by its user); returns `inner`."""
        target = self.path(inner)
        target.parent.mkdir(parents=True, exist_ok=True)
        for parent in [target.parent, *target.parent.parents]:
            if parent == self.scratch or self.scratch not in parent.parents:
                break
            os.chown(parent, self.uid, self.uid)
        if isinstance(data, str):
            target.write_text(data)
        else:
            target.write_bytes(data)
        target.chmod(mode)
        os.chown(target, self.uid, self.uid)
        return inner

    # -- processes -----------------------------------------------------------

    def command(self, argv: Sequence[str], env: dict[str, str] | None = None) -> list[str]:
        """`argv` wrapped to run on this host as its user."""
        python_prefix = sys.base_prefix
        environment = {
            "PATH": f"/tmp/venv-{self.role}/bin:/usr/local/bin:/usr/bin:/bin",
            "HOME": "/tmp",
            "TMPDIR": "/tmp",
            "USER": f"user-{self.role}",
            "LOGNAME": f"user-{self.role}",
            "LANG": "C.UTF-8",
            "PYTHONDONTWRITEBYTECODE": "1",
            "LD_LIBRARY_PATH": f"{self.python_root}/lib",
            **self.network.env,
            **self.env,
            **(env or {}),
        }
        mounts = " && ".join(
            [
                "mount -t tmpfs -o mode=0755 sparkctl-host /media",
                f"mkdir {self.python_root} {self.checkout} {self.deps}",
                f"mount --bind {shlex.quote(python_prefix)} {self.python_root}",
                f"mount -o remount,bind,ro {self.python_root}",
                f"mount --bind {shlex.quote(str(REPO))} {self.checkout}",
                f"mount --bind {shlex.quote(_site_packages())} {self.deps}",
                f"mount --bind {shlex.quote(str(self.scratch))} /tmp",
            ]
        )
        become = f"setpriv --reuid={self.uid} --regid={self.uid} --clear-groups"
        script = f'{mounts} && exec {become} -- env -i "$@"'
        return [
            "ip",
            "netns",
            "exec",
            self.netns,
            "unshare",
            "--mount",
            "--propagation",
            "private",
            "--",
            "sh",
            "-ec",
            script,
            "sh",
            *(f"{k}={v}" for k, v in environment.items()),
            *argv,
        ]

    def run(
        self, argv: Sequence[str], timeout: float = 60.0, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Run `argv` on this host to completion (bounded by `timeout`)."""
        return subprocess.run(
            self.command(argv, env),
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )

    def spawn(
        self, argv: Sequence[str], log_name: str, env: dict[str, str] | None = None
    ) -> subprocess.Popen[bytes]:
        """Start `argv` on this host in the background; output goes to a log in its /tmp."""
        log_path = self.scratch / log_name
        with open(log_path, "wb") as log_file:
            proc = subprocess.Popen(
                self.command(argv, env),
                stdout=log_file,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        self.network.spawned.append(proc)
        return proc

    def sparkctl(
        self, *args: str, timeout: float = 90.0, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        """`sparkctl ARGS` on this host, with its own interpreter."""
        return self.run([self.python, "-m", "cli", *args], timeout=timeout, env=env)

    def processes(self) -> list[int]:
        """Pids of every process in this host's namespace."""
        return _namespace_pids(self.netns)

    def set_link(self, up: bool) -> None:
        """Plug or unplug this host's cable (its port on the bridge)."""
        state = "up" if up else "down"
        _run("ip", "-n", self.network.bridge_ns, "link", "set", f"port-{self.role}", state)

    def install_python(self) -> None:
        """A virtualenv on this host that imports this checkout (as if pip-installed)."""
        venv = f"/tmp/venv-{self.role}"
        made = self.run(
            [f"{self.python_root}/bin/python3", "-m", "venv", "--without-pip", venv], timeout=60
        )
        if made.returncode != 0:
            raise RuntimeError(f"venv on {self.role} failed: {made.stderr}")
        version = sysconfig.get_python_version()
        site = self.path(f"{venv}/lib/python{version}/site-packages")
        self.write(
            f"{venv}/lib/python{version}/site-packages/sparkctl-checkout.pth",
            f"{self.checkout}\n{self.deps}\n",
        )
        assert site.is_dir()


class Network:
    """A bridge and hosts on it; `close()` removes every trace."""

    def __init__(self, roles: Sequence[str], env: dict[str, str] | None = None) -> None:
        remove_stale_namespaces()
        self.prefix = f"{_PREFIX}{os.getpid()}n{next(_network_numbers)}"
        self.bridge_ns = f"{self.prefix}-switch"
        self.env: dict[str, str] = dict(env or {})
        self.spawned: list[subprocess.Popen[bytes]] = []
        self.base = Path(tempfile.mkdtemp(prefix="sparkctl-hosts-", dir="/tmp"))
        self.base.chmod(0o711)
        self.hosts: dict[str, Host] = {}
        self._namespaces: list[str] = []
        try:
            self._build(roles)
        except BaseException:
            self.close()
            raise

    def _add_namespace(self, name: str) -> None:
        _run("ip", "netns", "add", name)
        self._namespaces.append(name)
        _run("ip", "-n", name, "link", "set", "lo", "up")

    def _build(self, roles: Sequence[str]) -> None:
        self._add_namespace(self.bridge_ns)
        _run("ip", "-n", self.bridge_ns, "link", "add", "br0", "type", "bridge")
        _run("ip", "-n", self.bridge_ns, "link", "set", "br0", "up")
        for index, role in enumerate(roles):
            host = Host(self, role, index)
            self._add_namespace(host.netns)
            # Both ends are made inside their namespaces: the machine's own never sees them.
            _run(
                "ip",
                "-n",
                host.netns,
                "link",
                "add",
                "eth0",
                "type",
                "veth",
                "peer",
                "name",
                f"port-{role}",
                "netns",
                self.bridge_ns,
            )
            _run("ip", "-n", self.bridge_ns, "link", "set", f"port-{role}", "master", "br0", "up")
            _run("ip", "-n", host.netns, "addr", "add", f"{host.ip}/24", "dev", "eth0")
            _run("ip", "-n", host.netns, "link", "set", "eth0", "up")
            self.hosts[role] = host
        for host in self.hosts.values():
            host.install_python()

    def __getitem__(self, role: str) -> Host:
        return self.hosts[role]

    def close(self) -> None:
        """Kill every process of every host, delete the namespaces and the scratch dirs."""
        for proc in self.spawned:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(proc.pid, signal.SIGKILL)
        for name in reversed(self._namespaces):
            _kill_namespace_processes(name)
        for proc in self.spawned:
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
        for name in reversed(self._namespaces):
            _run("ip", "netns", "del", name, check=False)
        self._namespaces.clear()
        shutil.rmtree(self.base, ignore_errors=True)

    def __enter__(self) -> Network:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
