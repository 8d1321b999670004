"""Finding a reachable Master for a Worker, with jittered exponential back-off.

A daemon thread tries every master URL (one `endpoint_ref` round trip each)
and hands each reachable Master's ref to a callback, which posts a message to
the Worker endpoint; it repeats with back-off while none answers. It never
registers anything itself and never touches the Worker's state.
"""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Callable, Sequence

from rpcenv import RpcEndpointRef, RpcEnv, parse_endpoint_uri

__all__ = ["MasterFinder", "master_endpoint_uri", "split_master_urls"]

log = logging.getLogger(__name__)


def split_master_urls(urls: Sequence[str]) -> list[str]:
    """Normalise `spark://h1:7077,h2:7077`-style URLs into `spark://host:port` ones.

    Raises:
        ValueError: naming the URL that is not `spark://host:port`.
    """
    result: list[str] = []
    for url in urls:
        text = url.strip()
        if not text.startswith("spark://"):
            raise ValueError(f"bad master URL {url!r}: expected spark://host:port")
        for part in text.removeprefix("spark://").split(","):
            _, address = parse_endpoint_uri(f"spark://{part.strip()}")
            result.append(address.to_spark_url())
    if not result:
        raise ValueError("no master URL given: expected spark://host:port")
    return result


def master_endpoint_uri(master_url: str, name: str = "Master") -> str:
    """`spark://host:port` -> `spark://Master@host:port`."""
    return f"spark://{name}@{master_url.removeprefix('spark://')}"


class MasterFinder:
    """Looks for reachable Masters on a thread of its own.

    Args:
        env: the Worker's RpcEnv.
        master_urls: `spark://host:port` URLs, tried in order.
        on_found: called (on the finder thread) with the URL and ref of each reachable Master.
        initial_backoff: seconds to wait after the first round of failures.
        max_backoff: the longest wait between rounds.
    """

    def __init__(
        self,
        env: RpcEnv,
        master_urls: Sequence[str],
        on_found: Callable[[str, RpcEndpointRef], None],
        initial_backoff: float = 0.1,
        max_backoff: float = 5.0,
    ) -> None:
        self._env = env
        self._urls = list(master_urls)
        self._on_found = on_found
        self._initial = initial_backoff
        self._max = max_backoff
        self._stopped = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._rng = random.Random()

    def start(self, delay: float = 0.0) -> None:
        """Start looking (after `delay` seconds), unless already looking."""
        with self._lock:
            if self._stopped.is_set() or (self._thread is not None and self._thread.is_alive()):
                return
            self._thread = threading.Thread(
                target=self._run, args=(delay,), name="master-finder", daemon=True
            )
            self._thread.start()

    def stop(self) -> None:
        """Stop looking for good."""
        self._stopped.set()

    def _run(self, delay: float) -> None:
        if delay > 0 and self._stopped.wait(delay):
            return
        attempt = 0
        while not self._stopped.is_set():
            found = False
            for url in self._urls:
                try:
                    ref = self._env.endpoint_ref(master_endpoint_uri(url), timeout=10.0)
                except Exception as exc:  # unreachable, refused, not a Master: try the next
                    log.debug("master %s not reachable: %s", url, exc)
                    continue
                if self._stopped.is_set():
                    return
                # Every reachable Master is handed over, as Spark's worker registers with
                # all of them: only the leader accepts, standbys refuse.
                self._on_found(url, ref)
                found = True
            if found:
                return
            pause = min(self._max, self._initial * 2**attempt) * self._rng.uniform(0.5, 1.5)
            if attempt in (0, 5) or attempt % 20 == 0:
                log.info(
                    "no master reachable at %s; retrying in %.2fs", ", ".join(self._urls), pause
                )
            attempt += 1
            self._stopped.wait(pause)
