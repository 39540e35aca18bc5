"""One lock per study output folder, so two runs never write the same study at once.

Two terminals (or JupyterLab and ``make figures``) running the same study into one figures
folder used to race inside staging promotion. Now a run holds ``<figures>/.locks/<study>.lock``
(an OS file lock through the maintained ``filelock`` package: released by the kernel when
its process dies, so a crashed run never leaves the folder locked) while it writes that
study; a second run waits for it, saying for whom, or with ``--no-wait`` stops at once naming
the other run. A small JSON beside each lock names its holder (pid, start time, command) for
those messages; a holder file left by a process that died is reported once, as taken over.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import sys
from pathlib import Path
from typing import Any

from labkit.errors import ParameterError

LOCKS = ".locks"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


def describe(holder: dict[str, Any] | None) -> str:
    """``pid 123, started 2026-12-03 10:02:11`` (or ``an unknown run``)."""
    if not holder:
        return "an unknown run"
    return f"pid {holder.get('pid')}, started {holder.get('started', '?')}"


class StudyLock:
    """The lock of ``<out_root>/<study>/``; not re-entrant (one object per study and run)."""

    def __init__(self, out_root: Path, study: str):
        from filelock import FileLock  # light, but only runs that write need it

        folder = Path(out_root) / LOCKS
        folder.mkdir(parents=True, exist_ok=True)
        self.study = study
        self.path = folder / f"{study}.lock"
        self.info = folder / f"{study}.json"
        self._lock = FileLock(str(self.path), thread_local=False)
        self.taken_over: dict[str, Any] | None = None

    @property
    def held(self) -> bool:
        return self._lock.is_locked

    def holder(self) -> dict[str, Any] | None:
        try:
            return json.loads(self.info.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None

    def try_acquire(self) -> bool:
        """Take the lock now if it is free; True on success (holder file written)."""
        from filelock import Timeout

        if self.held:
            return True
        try:
            self._lock.acquire(blocking=False)
        except Timeout:
            return False
        previous = self.holder()
        if previous and previous.get("pid") != os.getpid() and not _alive(int(previous["pid"])):
            self.taken_over = previous  # its process died while holding it: say so once
        started = dt.datetime.now().astimezone().isoformat(sep=" ", timespec="seconds")
        self.info.write_text(
            json.dumps({"pid": os.getpid(), "started": started, "command": " ".join(sys.argv)[:200]}),
            encoding="utf-8",
        )
        return True

    def release(self) -> None:
        if self.held:
            self.info.unlink(missing_ok=True)
            self._lock.release()


class Locks:
    """The study locks of one run: taken as the run reaches each study, released when the
    study is done (or the run ends)."""

    def __init__(self, out_root: Path):
        self.out_root = Path(out_root)
        self._locks: dict[str, StudyLock] = {}
        self.warnings: list[str] = []

    def get(self, study: str) -> StudyLock:
        if study not in self._locks:
            self._locks[study] = StudyLock(self.out_root, study)
        return self._locks[study]

    def holds(self, study: str) -> bool:
        """Whether this run holds ``study``'s lock now (without making a lock object)."""
        return study in self._locks and self._locks[study].held

    def try_acquire(self, study: str) -> bool:
        lock = self.get(study)
        ok = lock.try_acquire()
        if ok and lock.taken_over:
            self.warnings.append(f"{study}: took over the lock of a run that died ({describe(lock.taken_over)})")
            print(f"labkit run: warning: {self.warnings[-1]}", file=sys.stderr)
            lock.taken_over = None
        return ok

    def acquire_all_or_fail(self, studies: list[str]) -> None:
        """``--no-wait``: take every lock now, or raise naming the run that holds one."""
        for study in dict.fromkeys(studies):
            if not self.try_acquire(study):
                holder = self.get(study).holder()
                self.release_all()
                raise ParameterError(
                    f"{self.out_root / study} is being written by another labkit run "
                    f"({describe(holder)}); wait for it, or run again without --no-wait"
                )

    def release(self, study: str) -> None:
        if study in self._locks:
            self._locks.pop(study).release()

    def release_all(self) -> None:
        for study in list(self._locks):
            self.release(study)
