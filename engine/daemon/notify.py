"""Notifications from the supervisor: a run's end (and a health rule's warn, stalled, stop) sent to the
apprise URLs of `ganmgr settings --notify`, even when the worker died or no TUI is open.

Driven by the store's run events, not by the code that settled the run (`store.notices`): each tick the
`Notifier` takes the events past the cursor, keeps those the `notify_on` setting wants
(`store.checks.notify_wanted`) and hands one message per URL to that URL's sender thread. A sender runs
`python -m engine.daemon.notify_send` per burst of messages with a hard limit (SEND_TIMEOUT_S a message),
so a dead or hanging service costs its own thread a few seconds and the tick nothing. No retries: a failure is logged once per
URL (redacted: `json://127.0.0.1:8080/…`) until that URL works again. The supervisor stays up while
messages are in flight, then exits as usual; a supervisor killed mid-send drops what it had taken.

A headless run has no supervisor watching it: when it ends, the headless command starts one if a
notification waits (`supervisor_work_pending` asks `store.notices.notices_pending`), which sends it and
exits. Any `ganmgr` command does the same for events a reconcile wrote.
"""

from __future__ import annotations

import json
import queue
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.control.launcher import worker_env
from engine.daemon import notify_send
from engine.daemon.log import log
from store.checks import check_notify_on, notify_wanted, redact_url
from store.errors import StoreError
from store.notices import Notice, notices_pending, notify_words, take_notices
from store.views import RunView

SEND_TIMEOUT_S = 10.0  # per URL and message: start the child, import apprise, send (setting notify_timeout_s)
MAX_BATCH = 20  # messages one child sends to one URL (its limit: SEND_TIMEOUT_S for each)
MAX_WAITING = 100  # messages waiting per URL; beyond that they are dropped (and logged)
MAX_METRICS = 8  # metrics named in a message
_TYPES = {"completed": "success", "warn": "warning", "stalled": "warning", "cancelled": "warning"}


@dataclass(frozen=True)
class Message:
    """One notification: its title, body and apprise type (info, success, warning, failure)."""

    title: str
    body: str
    kind: str


def message(notice: Notice) -> Message:
    """What is said about an event: the run's id, name and the event, its epoch, the reason (first line of
    the event's message, else of the run's error) and its last metrics."""
    ev, run = notice.event, notice.run
    word = ev.status
    lines = [f"run {run.id} {run.name} ({run.recipe}): {word}",
             f"epoch {run.epoch}/{run.epochs}, step {run.step}" + _duration(run)]
    reason = _first_line(ev.message) or _first_line(run.error)
    if reason and reason != word:
        lines.append(reason)
    metrics = last_metrics_line(run)
    if metrics:
        lines.append(f"last: {metrics}")
    if run.host:
        lines.append(f"host {run.host}")
    return Message(f"ganmgr: run {run.id} {run.name} {word}", "\n".join(lines), _TYPES.get(word, "failure"))


def last_metrics_line(run: RunView) -> str:
    """`d_loss=0.123 g_loss=1.5 test_acc=45.2% (best 47.0%)`: the row's last numbers, a few of them."""
    parts = []
    for key, value in run.last_metrics.items():
        if isinstance(value, int | float) and not isinstance(value, bool) and key not in ("epoch", "step"):
            parts.append(f"{key}={value:.4g}")
        if len(parts) >= MAX_METRICS:
            break
    if run.last_test_acc is not None:
        best = f" (best {run.best_test_acc:.1f}%)" if run.best_test_acc is not None else ""
        parts.append(f"test_acc={run.last_test_acc:.1f}%{best}")
    return " ".join(parts)


class Notifier:
    """The supervisor's job kind for notifications (loop.JobKind): owns no run, busy while sending."""

    def __init__(self, home: Path, timeout_s: float = SEND_TIMEOUT_S) -> None:
        self.home = home
        self.timeout_s = timeout_s
        self.senders: dict[str, Sender] = {}
        self._bad_setting: str | None = None

    def owned(self) -> set[int]:
        return set()

    def tick(self, settings: dict[str, Any], running: list[RunView]) -> None:
        urls = settings.get("notify_urls") or []
        if not isinstance(urls, list) or not urls:
            return
        try:
            notify_on = check_notify_on(settings.get("notify_on"))
        except StoreError as e:  # written by hand: fall back to the default, and say so once
            if self._bad_setting != str(e):
                log(f"notify_on: {e}; using the default")
                self._bad_setting = str(e)
            notify_on = None
        timeout = settings.get("notify_timeout_s", self.timeout_s)
        if isinstance(timeout, int | float) and not isinstance(timeout, bool) and 1 <= timeout <= 600:
            self.timeout_s = float(timeout)
            for sender in self.senders.values():
                sender.timeout_s = self.timeout_s
        for notice in take_notices(self.home, notify_words(notify_on)):
            ev, run = notice.event, notice.run
            if not notify_wanted(ev.status, notify_on, run.duration_s):
                continue
            msg = message(notice)
            log(f"run {run.id}: notifying {ev.status} to {len(urls)} URL(s)")
            for url in urls:
                self.sender(url).put(msg, run.id)

    def sender(self, url: str) -> Sender:
        if url not in self.senders:
            self.senders[url] = Sender(url, self.timeout_s)
        return self.senders[url]

    def busy(self) -> bool:
        """Messages in flight, or events past the cursor (settled by a command while we went idle)."""
        return any(s.busy() for s in self.senders.values()) or notices_pending(self.home)

    def stop_tracking(self) -> None:
        """Supervisor shutdown: messages not yet sent are dropped (the threads are daemons)."""


class Sender:
    """One URL's thread: sends what waits for it in a child process with a hard limit, burst by burst."""

    def __init__(self, url: str, timeout_s: float = SEND_TIMEOUT_S) -> None:
        self.url = url
        self.shown = redact_url(url)
        self.timeout_s = timeout_s
        self.queue: queue.Queue[tuple[Message, int]] = queue.Queue()
        self.failing = False  # the last send failed and was logged: the next failures are not
        self.sent = 0
        self.failed = 0
        self._thread: threading.Thread | None = None

    def put(self, msg: Message, run_id: int) -> None:
        if self.queue.qsize() >= MAX_WAITING:
            log(f"run {run_id}: notification to {self.shown} dropped: {MAX_WAITING} are waiting already")
            return
        self.queue.put((msg, run_id))
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._loop, name=f"notify {self.shown}", daemon=True)
            self._thread.start()

    def busy(self) -> bool:
        return self.queue.unfinished_tasks > 0

    def _loop(self) -> None:
        while True:
            try:
                batch = [self.queue.get(timeout=1.0)]
            except queue.Empty:
                return  # idle: the next put starts a new thread
            while len(batch) < MAX_BATCH:
                try:
                    batch.append(self.queue.get_nowait())
                except queue.Empty:
                    break
            try:
                self._send(batch)
            except Exception as e:  # never let one burst end the thread with work waiting
                self.failed += len(batch)
                self._failed(batch[0][1], f"the sender failed: {type(e).__name__}")
            finally:
                for _ in batch:
                    self.queue.task_done()

    def _send(self, batch: list[tuple[Message, int]]) -> None:
        """One child for the burst: it reports each message as it goes (`1` sent, `0` refused), so what it
        did before a hard stop still counts."""
        payload = json.dumps({"url": self.url, "timeout": self.timeout_s, "messages": [
            {"title": m.title, "body": m.body, "type": m.kind} for m, _ in batch]})
        limit = self.timeout_s * len(batch)
        timed_out, why = False, ""
        try:
            done = subprocess.run(send_argv(), input=payload.encode(), capture_output=True, timeout=limit,
                                  env=worker_env(), close_fds=True)
            results, code = done.stdout or b"", done.returncode
        except subprocess.TimeoutExpired as e:
            results, code, timed_out = e.stdout or b"", None, True
        except OSError as e:
            results, code, why = b"", None, f"could not start the sender: {e.strerror or type(e).__name__}"
        marks = results.decode(errors="replace") if isinstance(results, bytes) else str(results)
        for i, (_, run_id) in enumerate(batch):
            mark = marks[i] if i < len(marks) else ""
            if mark == "1":
                self.sent += 1
                if self.failing:
                    log(f"notify {self.shown}: works again (run {run_id})")
                    self.failing = False
                continue
            self.failed += 1
            if timed_out and not mark:
                why = f"no answer within {self.timeout_s:g} s (the sender was killed)"
            elif mark == "0":
                why = notify_send.EXITS[notify_send.EXIT_REFUSED]
            elif not why:
                why = notify_send.EXITS.get(code, f"the sender exited with code {code}")  # type: ignore[arg-type]
            self._failed(run_id, why)

    def _failed(self, run_id: int, why: str) -> None:
        if not self.failing:
            log(f"notify {self.shown}: run {run_id}'s notification failed: {why}; not retried, and further "
                "failures of this URL are not logged until it works again")
            self.failing = True


def send_argv() -> list[str]:
    """The child that sends one message (argv only: the URL travels on its stdin)."""
    return [sys.executable, "-m", "engine.daemon.notify_send"]


def _first_line(text: str | None) -> str:
    stripped = (text or "").strip()
    return stripped.splitlines()[0][:300] if stripped else ""


def _duration(run: RunView) -> str:
    seconds = run.duration_s
    if seconds is None:
        return ""
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f", ran {hours}h{minutes:02d}m" if hours else f", ran {minutes}m{secs:02d}s"
