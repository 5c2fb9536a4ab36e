"""Trials of dead workers: found, failed, and queued again.

Optuna's heartbeat (RDBStorage `heartbeat_interval`) works only inside `study.optimize` and
JournalStorage has none, while the sweep drives trials with ask/tell under its own lock. So
each running trial carries its worker in user attributes, `worker: {host, pid}`, plus a
`heartbeat` time refreshed by a thread. A RUNNING trial is stale when its worker is on this
host and that pid is gone, or when its heartbeat is older than `STALE_AFTER_S` (a worker on
another machine, which cannot be asked directly). A stale trial is marked FAIL and enqueued
again with the same parameters (Optuna's RetryHeartbeatStaleTrialCallback), so its run resumes
from its own checkpoint when a worker picks it up.
"""

from __future__ import annotations

import os
import socket
import threading
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

import optuna
from optuna.storages import RetryHeartbeatStaleTrialCallback
from optuna.trial import FrozenTrial, TrialState

WORKER, HEARTBEAT = "worker", "heartbeat"
HEARTBEAT_EVERY_S = 60.0
STALE_AFTER_S = 600.0
#: a trial killed this many times is not retried again (it is probably what kills the worker)
MAX_RETRIES = 3
LOST = "its worker stopped while it ran (killed or lost); queued again"


def identity() -> dict[str, object]:
    return {"host": socket.gethostname(), "pid": os.getpid()}


def claim(trial: optuna.Trial) -> None:
    """Mark a freshly asked trial as this process's."""
    trial.set_user_attr(WORKER, identity())
    trial.set_user_attr(HEARTBEAT, time.time())


@contextmanager
def heartbeat(trial: optuna.Trial, every_s: float = HEARTBEAT_EVERY_S) -> Iterator[None]:
    """Refresh the trial's heartbeat while the body runs; stopped before the trial is told."""
    stop = threading.Event()

    def beat() -> None:
        while not stop.wait(every_s):
            try:
                trial.set_user_attr(HEARTBEAT, time.time())
            except Exception:  # a storage hiccup must not kill training; the next beat retries
                continue

    thread = threading.Thread(target=beat, name="tzoo-heartbeat", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def is_stale(trial: FrozenTrial, *, now: float | None = None,
             stale_after_s: float = STALE_AFTER_S) -> bool:
    if trial.state != TrialState.RUNNING:
        return False
    worker = trial.user_attrs.get(WORKER) or {}
    if worker.get("host") == socket.gethostname() and isinstance(worker.get("pid"), int):
        return not _alive(worker["pid"])
    last = trial.user_attrs.get(HEARTBEAT)
    if last is None and trial.datetime_start is not None:
        last = trial.datetime_start.timestamp()
    return last is not None and (now or time.time()) - float(last) > stale_after_s


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    return True


def recover_stale(study: optuna.Study, **kwargs: float) -> list[int]:
    """Fail every stale trial and queue it again; the numbers of the failed trials."""
    failed = []
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if not is_stale(trial, **kwargs):
            continue
        storage = study._storage
        try:
            # Optuna has no public handle on another process's trial; the storage calls are
            # the ones Trial.set_user_attr and Study.tell make. Attributes first: a finished
            # trial is frozen. The state change is the claim: one process wins it (a database
            # locks the row; a journal is under the admission lock), the others find the trial
            # finished, so a lost trial is retried once however many workers notice it.
            storage.set_trial_user_attr(trial._trial_id, "status", "lost")
            storage.set_trial_user_attr(trial._trial_id, "reason", LOST)
            if not storage.set_trial_state_values(trial._trial_id, TrialState.FAIL):
                continue
        except optuna.exceptions.UpdateFinishedTrialError:
            continue  # its worker (or another sweep process) finished it meanwhile
        frozen = storage.get_trial(trial._trial_id)
        if frozen.state != TrialState.FAIL:  # a journal ignores the change to a finished trial
            continue
        retry(study, frozen)
        failed.append(trial.number)
    return failed


def retry(study: optuna.Study, trial: FrozenTrial, max_retry: int | None = MAX_RETRIES) -> None:
    """Enqueue `trial`'s parameters again (keeping its reports: the run resumes, not restarts).
    `max_retry=None` for a trial the user interrupted: that says nothing about the trial."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        RetryHeartbeatStaleTrialCallback(max_retry=max_retry,
                                         inherit_intermediate_values=True)(study, trial)
