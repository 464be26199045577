"""Entry point of one runner process: ``python -m testbed.runner.proc ROLE SPEC.json STATUS.json``.

The status file is written atomically at the end, also when the role fails (with ``error``),
so the runner always learns why a process ended; a process killed from outside leaves none,
and the runner reports that. A process ends with its runner (``end_with_parent``)."""
from __future__ import annotations

import sys
import traceback

from testbed.runner.files import read_json, write_json


def end_with_parent() -> None:
    """Ask Linux to SIGTERM this process when the runner that started it dies (even by SIGKILL),
    so no node outlives its run; exit now if the runner is already gone."""
    import ctypes
    import os
    import signal

    parent = int(os.environ.get("TESTBED_RUNNER_PID", os.getppid()))
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # not Linux: the runner's stop is the only way out
        return
    if os.getppid() != parent:
        sys.exit(1)


def main(argv: list[str]) -> int:
    end_with_parent()
    role, spec_path, status_path = argv
    from testbed.runner.nodes import ROLES as NODE_ROLES
    from testbed.runner.roles import ROLES

    try:
        status = {**ROLES, **NODE_ROLES}[role](read_json(spec_path))
    except Exception as exc:  # reported to the runner through the status file
        write_json(status_path, {"role": role, "error": f"{type(exc).__name__}: {exc}",
                                 "traceback": traceback.format_exc()})
        return 1
    write_json(status_path, status)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
