"""Raise this process's soft open-file limit to its hard limit, once.

Every peer connection holds a file descriptor: a Master with 1,000 workers, or a
driver with 1,000 executors, passes the soft limit many systems start processes
with (1,024), while the hard limit the administrator set allows far more. Servers
that hold many connections raise their own soft limit at start (Go's runtime does
it for every program), so a default install scales to the hard limit instead of
failing with EMFILE at a thousand peers.
"""

from __future__ import annotations

import logging
import threading

try:
    import resource
except ImportError:  # not a POSIX system: nothing to raise
    resource = None  # type: ignore[assignment]

_log = logging.getLogger(__name__)

#: The ceiling when the hard limit is unlimited (the kernel refuses more than
#: fs.nr_open, which defaults to 2**20).
UNLIMITED_CEILING = 1 << 20

_lock = threading.Lock()
_raised = False


def raise_open_file_limit() -> int | None:
    """Lift RLIMIT_NOFILE's soft limit to the hard one; the soft limit after, or None.

    Runs once per process; later calls return None at once. A refusal by the kernel
    leaves the limit as it was and is logged at DEBUG, since the process still works
    up to its old limit.
    """
    global _raised
    if resource is None:
        return None
    with _lock:
        if _raised:
            return None
        _raised = True
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        target = UNLIMITED_CEILING if hard == resource.RLIM_INFINITY else hard
        if soft != resource.RLIM_INFINITY and soft < target:
            try:
                resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            except (ValueError, OSError) as exc:
                _log.debug(
                    "open-file limit stays at %d (raising to %d refused: %s)", soft, target, exc
                )
                return soft
            _log.debug("open-file limit raised from %d to %d", soft, target)
            return target
        return soft
