"""Notifications: `settings --notify`, the supervisor's notifier and the TUI's toasts, against real local
HTTP servers on 127.0.0.1 (apprise `json://` URLs), a real supervisor process and a real SQLite store.

A notify URL carries secrets (here a password and a token in the path): the tests also check that no
command output or log line ever shows them.
"""

from __future__ import annotations

import asyncio
import json
import os
import select
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from engine.control.reconcile import supervisor_work_pending
from engine.daemon.notify import Message, Sender
from store import runs as store_runs
from store import settings as store_settings
from store.checks import (
    DEFAULT_NOTIFY_ON,
    NOTIFY_EVENTS,
    NOTIFY_SHORT_RUN_S,
    check_notify_on,
    check_notify_urls,
    notify_wanted,
    redact_url,
)
from store.errors import StoreError
from store.lifecycle import TERMINAL_STATUSES
from store.notices import latest_event_id, notices_pending, take_notices
from tests.helpers import (
    ROOT,
    RUN_TIMEOUT,
    ganmgr,
    make_npz,
    queue,
    run,
    tiny_args,
    wait_for,
    wait_status,
    wait_supervisor_gone,
)
from tests.tui_helpers import make_run

SECRET = "tok-7f3a9c"  # in every test URL's path
PASSWORD = "pa55-e2b1"


class Hook:
    """A webhook on 127.0.0.1: records each POSTed JSON body; `hang` holds every request until released."""

    def __init__(self, hang: bool = False) -> None:
        self.got: list[dict[str, Any]] = []
        self.paths: list[str] = []
        self.ended: list[float] = []  # when each held request ended (released, or its client went away)
        self.arrived = threading.Event()
        self.release = threading.Event()
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                hook.paths.append(self.path)
                hook.got.append(json.loads(body))
                hook.arrived.set()
                if hang:  # hold the request until released, or until its client gives up on it
                    while not hook.release.wait(0.1) and not client_gone(self.connection):
                        pass
                    hook.ended.append(time.time())
                    if not hook.release.is_set():
                        return
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def port(self) -> int:
        return self.server.server_address[1]

    def url(self) -> str:
        return f"json://ganmgr:{PASSWORD}@127.0.0.1:{self.port}/{SECRET}"

    def titles(self) -> list[str]:
        return [g["title"] for g in self.got]

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def hook():
    h = Hook()
    yield h
    h.close()


def client_gone(sock: socket.socket) -> bool:
    """The client closed its end (the request was read whole, so readable means end of file)."""
    readable, _, _ = select.select([sock], [], [], 0)
    try:
        return bool(readable) and sock.recv(1, socket.MSG_PEEK) == b""
    except OSError:
        return True


def closed_port_url() -> str:
    """A json:// URL to a port nobody listens on (bound, then closed)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"json://127.0.0.1:{port}/{SECRET}"


def no_secret(text: str) -> bool:
    return SECRET not in text and PASSWORD not in text


def run_supervisor(home: Path) -> subprocess.CompletedProcess:
    """A real supervisor in the foreground: it ticks, sends what waits, and exits when idle."""
    return subprocess.run([sys.executable, "-m", "engine.supervisor", "--home", str(home), "--tick", "0.1"],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)


def dead_running_row(home: Path, name: str):
    """A `running` row whose recorded worker is gone (a pid that exited): reconcile makes it `lost`."""
    view = make_run(home, "running", name=name)
    gone = subprocess.Popen(["true"])
    gone.wait()
    return store_runs.mark_started(home, view.id, pid=gone.pid, pid_start="1")


# ------------------------------------------------------------------------------------------- rules


def test_redacted_urls_show_scheme_and_host_only():
    assert redact_url(f"json://ganmgr:{PASSWORD}@127.0.0.1:8080/{SECRET}?x=1") == "json://127.0.0.1:8080/…"
    assert redact_url("ntfy://ntfy.example/my-topic") == "ntfy://ntfy.example/…"
    assert redact_url(f"mailto://user:{PASSWORD}@gmail.com") == "mailto://gmail.com/…"
    # a host part that is no host name is itself the secret (a bot token, a topic, a webhook id)
    assert redact_url(f"tgram://123456:{SECRET}/789") == "tgram://…"
    assert redact_url(f"ntfy://{SECRET}") == "ntfy://…"
    assert redact_url("not a url") == "…"


def test_notify_values_are_checked_by_apprise_and_refusals_hide_the_url():
    assert check_notify_urls(["ntfy://ntfy.example/topic", "json://127.0.0.1:9/x"]) == [
        "ntfy://ntfy.example/topic", "json://127.0.0.1:9/x"]
    for bad, said in ((["nonsense"], "not a URL like"), ([f"foo://host.example/{SECRET}"], "apprise"),
                      (["json://a.b/x", "json://a.b/x"], "twice"), ("json://a.b/x", "list")):
        with pytest.raises(StoreError, match=said) as err:
            check_notify_urls(bad)
        assert no_secret(str(err.value))
    assert check_notify_on("failed, warn,failed") == ["failed", "warn"]
    with pytest.raises(StoreError, match="unknown event 'bogus'"):
        check_notify_on("failed,bogus")
    # every terminal status can be notified, and the health flags plug into the same list
    assert set(TERMINAL_STATUSES) | {"stopped", "warn", "stalled"} <= set(NOTIFY_EVENTS)


def test_the_default_is_every_event_but_cancelled_and_completed_only_for_long_runs():
    assert "cancelled" not in DEFAULT_NOTIFY_ON
    assert all(notify_wanted(e, None, 1.0) for e in DEFAULT_NOTIFY_ON if e != "completed")
    assert not notify_wanted("completed", None, NOTIFY_SHORT_RUN_S - 1)
    assert notify_wanted("completed", None, NOTIFY_SHORT_RUN_S)
    assert not notify_wanted("cancelled", None, 5000.0)
    assert notify_wanted("completed", ["completed"], 1.0)  # asked for by name: every completed run
    assert not notify_wanted("failed", ["completed"], 1.0)


def test_the_cursor_hands_each_event_out_once_and_starts_at_now(home: Path):
    early = make_run(home, "failed", name="history")
    assert take_notices(home, NOTIFY_EVENTS) == []  # the first look starts the cursor: history is not news
    later = make_run(home, "diverged", name="news")
    store_runs.add_event(home, later.id, "warn", "critic gap > 1e4 for 3 windows")
    taken = take_notices(home, ("diverged", "warn"))
    assert [(n.run.id, n.event.status) for n in taken] == [(later.id, "diverged"), (later.id, "warn")]
    assert taken[1].event.message.startswith("critic gap")
    assert take_notices(home, NOTIFY_EVENTS) == []
    assert early.id != later.id and latest_event_id(home) >= taken[-1].event.id


# ------------------------------------------------------------------------------------- the command


def cli(home: Path, capsys, *args: str) -> tuple[int, str, str]:
    """`ganmgr --home HOME ARGS...` through main() in this process (a process start costs ~0.5 s of CPU)."""
    from tui.cli.main import main

    try:
        code = main(["--home", str(home), *args])
    except SystemExit as e:  # argparse's own refusals
        code = int(e.code or 0)
    out = capsys.readouterr()
    return code, out.out, out.err


def test_settings_notify_bad_input_exits_2_naming_it_and_changes_nothing(home: Path, hook: Hook, capsys):
    assert cli(home, capsys, "settings", "--notify", hook.url(), "--notify-on", "failed")[0] == 0
    before = store_settings.get_settings(home)
    for args, said in (
        (["--notify", f"nonsense-{SECRET}"], "notify URL 1"),
        (["--notify", hook.url(), "--notify", f"foo://host.example/{SECRET}"], "notify URL 2 (foo://"),
        (["--notify", "none", "--notify", hook.url()], "give it alone"),
        (["--notify-on", "failed,explode"], "unknown event 'explode'"),
        (["--max-concurrent", "3", "--notify", "nonsense"], "notify URL 1"),  # nothing, not half of it
    ):
        code, out, err = cli(home, capsys, "settings", *args)
        assert code == 2, (args, out, err)
        assert said in err and len(err.strip().splitlines()) == 1 and not out, err
        assert no_secret(out + err)
        assert store_settings.get_settings(home) == before
    assert before["notify_urls"] == [hook.url()] and before["notify_on"] == ["failed"]
    # the real command, once: the same refusal from a process of its own
    out = ganmgr(home, "settings", "--notify-on", "explode")
    assert out.returncode == 2 and "unknown event 'explode'" in out.stderr and no_secret(out.stderr)


def test_settings_and_show_never_print_the_url(home: Path, hook: Hook, capsys):
    code, out, _ = cli(home, capsys, "settings", "--notify", hook.url(), "--notify", "ntfy://ntfy.example/topic")
    assert code == 0
    shown = f"json://127.0.0.1:{hook.port}/…"
    assert shown in out and "ntfy://ntfy.example/…" in out and no_secret(out)
    data = json.loads(cli(home, capsys, "settings", "--json")[1])
    assert data["notify_urls"] == [shown, "ntfy://ntfy.example/…"] and "notify_cursor" not in data
    view = make_run(home, "failed", name="shown")
    code, out, err = cli(home, capsys, "show", str(view.id))
    assert code == 0 and "shown" in out and no_secret(out + err)
    assert cli(home, capsys, "settings", "--notify", "none")[0] == 0
    assert store_settings.get_settings(home)["notify_urls"] == []
    assert "notify          none" in cli(home, capsys, "settings")[1]


# -------------------------------------------------------------------------------- the supervisor


@pytest.mark.slow
def test_the_supervisor_notifies_every_status_once_whoever_settled_the_run(store_home: Path, hook: Hook):
    """Statuses set through the store API (a real failing run per status would be slow), a `lost` settled
    by a command's reconcile, health flags recorded as events; the supervisor is real. A closed port on the
    side fails once in the log, redacted, and holds nothing up."""
    home = store_home
    dead = closed_port_url()
    assert ganmgr(home, "settings", "--notify", hook.url(), "--notify", dead,
                  "--notify-on", ",".join(NOTIFY_EVENTS)).returncode == 0
    runs = {st: make_run(home, st, name=f"n-{st}", epochs=4, epoch=2, test_acc=41.5)
            for st in ("completed", "failed", "diverged", "killed", "cancelled")}
    flagged = make_run(home, "running", name="n-flags")
    store_runs.add_event(home, flagged.id, "warn", "critic gap > 1e4 for 3 windows")
    store_runs.add_event(home, flagged.id, "stalled", "no record for 5 min")
    store_runs.set_status(home, flagged.id, "completed", pid=None)  # no supervisor may adopt this process
    lost = dead_running_row(home, "n-lost")
    assert supervisor_work_pending(home)  # notifications wait: any command starts a supervisor

    out = ganmgr(home, "ls")  # reconciles n-lost to `lost`, then starts the supervisor that sends it all
    assert out.returncode == 0, out.stderr
    assert run(home, lost.id).status == "lost"
    expected = [(r.id, r.name, st) for st, r in runs.items()] + [
        (flagged.id, "n-flags", "warn"), (flagged.id, "n-flags", "stalled"), (flagged.id, "n-flags", "completed"),
        (lost.id, "n-lost", "lost")]
    wait_for(lambda: len(hook.got) >= len(expected), 120, "every notification")
    wait_for(lambda: "exiting: nothing queued or running" in (home / "supervisor.log").read_text(), 60,
             "the supervisor to finish its sends and exit")
    wait_supervisor_gone(home)
    assert sorted(hook.titles()) == sorted(f"ganmgr: run {i} {name} {st}" for i, name, st in expected)
    for body in hook.got:
        rid = int(body["title"].split()[2])
        assert f"run {rid} " in body["message"] and "epoch " in body["message"]
    failed = next(g for g in hook.got if g["title"].endswith("n-failed failed"))
    assert "RuntimeError: something broke" in failed["message"] and "test_acc=41.5%" in failed["message"]
    assert failed["type"] == "failure"
    warn = next(g for g in hook.got if g["title"].endswith(" warn"))
    assert "critic gap > 1e4 for 3 windows" in warn["message"] and warn["type"] == "warning"
    assert set(hook.paths) == {f"/{SECRET}"}

    log = (home / "supervisor.log").read_text()
    assert no_secret(log), log
    dead_shown = redact_url(dead)
    assert log.count(f"notify {dead_shown}: ") == 1, log  # 9 failures, logged once
    assert "not retried" in log

    # exactly once: nothing is left, and a second supervisor sends nothing again
    assert not notices_pending(home) and not supervisor_work_pending(home)
    assert run_supervisor(home).returncode == 0
    assert len(hook.got) == len(expected)


def test_under_the_default_a_short_completed_run_and_a_cancel_are_not_sent(store_home: Path, hook: Hook):
    home = store_home
    assert ganmgr(home, "settings", "--notify", hook.url()).returncode == 0
    short = make_run(home, "completed", name="short")
    cancelled = make_run(home, "cancelled", name="byhand")
    long = make_run(home, "running", name="long")
    store_runs.set_status(home, long.id, "completed", started_at=time.time() - NOTIFY_SHORT_RUN_S - 60)
    failed = make_run(home, "failed", name="broke")
    assert run_supervisor(home).returncode == 0
    assert sorted(hook.titles()) == sorted([f"ganmgr: run {long.id} long completed",
                                            f"ganmgr: run {failed.id} broke failed"])
    assert short.id and cancelled.id


@pytest.mark.slow
def test_a_hanging_service_is_cut_off_and_logged_once(home: Path, capfd):
    """The sender's hard limit (a short one here) against a server that never answers: the child is
    killed; the next message to the same URL is tried again and fails the same way, without a second
    log line."""
    hang = Hook(hang=True)
    try:
        sender = Sender(hang.url(), timeout_s=2.0)
        msg = Message("ganmgr: run 1 x failed", "run 1 x (baseline): failed", "failure")
        for run_id in (1, 2):
            sender.put(msg, run_id)
            wait_for(lambda: not sender.busy(), 60, f"send {run_id} to give up")
        assert sender.failed == 2 and sender.sent == 0
        out = capfd.readouterr().out
        assert out.count("notify json://127.0.0.1:") == 1 and "no answer within 2 s" in out
        assert no_secret(out)
        hang.release.set()
        ok = Hook()
        try:
            good = Sender(ok.url())
            good.put(msg, 3)
            wait_for(lambda: not good.busy(), 60, "the send")
            assert good.sent == 1 and ok.titles() == ["ganmgr: run 1 x failed"]
        finally:
            ok.close()
    finally:
        hang.close()


@pytest.mark.slow
def test_real_runs_are_notified_and_a_hanging_url_never_holds_the_queue(store_home: Path, hook: Hook,
                                                                         tmp_path: Path):
    """Two tiny queued runs through the real supervisor and real workers; one URL hangs on every request.
    The second run starts and ends while the hanging service still holds the first run's notification."""
    home = store_home
    npz = make_npz(tmp_path)
    hang = Hook(hang=True)
    try:
        # a limit far beyond the test's: a notifier that waited on its sends would hold the queue that long
        assert ganmgr(home, "settings", "--notify", hook.url(), "--notify", hang.url(), "--notify-timeout",
                      "600", "--notify-on", "completed,failed,diverged,killed,lost").returncode == 0
        first = queue(home, npz, "first", 1, "--max-concurrent", "1")
        second = queue(home, npz, "second", 1)
        wait_for(lambda: hang.arrived.is_set(), RUN_TIMEOUT, "the first run's notification at the hanging URL")
        assert hang.titles() == [f"ganmgr: run {first} first completed"]
        wait_status(home, second, {"completed", "failed", "lost", "killed", "diverged", "cancelled"})
        # the order of events: the supervisor saw the second run start and end while the first run's
        # notification was still held open by the hanging service
        assert hang.ended == [] and len(hang.got) == 1
        wait_for(lambda: len(hook.got) == 2, 60, "both notifications at the working URL")
        assert hook.titles() == [f"ganmgr: run {first} first completed", f"ganmgr: run {second} second completed"]
        assert "epoch 1/1" in hook.got[0]["message"]
        events = [e.status for e in store_runs.list_events(home, second)]
        assert events[-1] == "completed"
    finally:
        hang.close()  # answers the held request: the supervisor's senders finish and it exits
    wait_supervisor_gone(home, timeout=60)
    assert no_secret((home / "supervisor.log").read_text())


@pytest.mark.slow
def test_a_headless_run_s_end_is_sent_by_a_supervisor_it_starts(store_home: Path, hook: Hook, tmp_path: Path):
    """No supervisor watches a headless run: when it ends, its command starts one if a notification waits
    (a real worker, made to diverge at step 1 by the NaN drill)."""
    home = store_home
    npz = make_npz(tmp_path)
    assert ganmgr(home, "settings", "--notify", hook.url(), "--notify-on", "diverged").returncode == 0
    out = ganmgr(home, "run", "--headless", *tiny_args(npz, "headless-nan", 1), timeout=RUN_TIMEOUT,
                 env={"GANMGR_DEBUG_NAN_STEP": "1"})
    views = store_runs.list_runs(home)
    assert len(views) == 1 and views[0].status == "diverged", out.stdout + out.stderr
    wait_for(lambda: hook.got, 60, "the headless run's end notification")
    assert hook.titles() == [f"ganmgr: run {views[0].id} headless-nan diverged"]
    wait_supervisor_gone(home)
    assert no_secret(out.stdout + out.stderr + (home / "supervisor.log").read_text())


# ------------------------------------------------------------------------------------------- the TUI


def test_the_tui_toasts_a_run_s_end_and_rings_the_bell(home: Path):
    from tui.app import GanmgrApp

    make_run(home, "failed", name="old-news")

    class App(GanmgrApp):
        CSS_PATH = str(ROOT / "tui" / "ganmgr.tcss")  # a subclass's relative path would be read from tests/
        bells = 0

        def bell(self) -> None:
            self.bells += 1
            super().bell()

    app = App(home, welcome=False, reconcile=False)

    async def main() -> None:
        from tests.tui_helpers import wait_for as pilot_wait

        async with app.run_test(size=(100, 30)) as pilot:
            await pilot_wait(pilot, lambda: app._event_cursor is not None, what="the first read of events")
            view = make_run(home, "running", name="watched", epochs=4, epoch=3)
            store_runs.set_status(home, view.id, "diverged", message="diverged: non-finite loss at step 5")
            store_runs.add_event(home, view.id, "warn", "D saturated for 3 windows")
            await pilot_wait(pilot, lambda: len(app._notifications) >= 2, what="the toasts")
            toasts = [(n.title, n.message, n.severity) for n in app._notifications]
            assert (f"run {view.id} diverged", "watched: diverged at epoch 3/4\ndiverged: non-finite loss at "
                    "step 5", "error") in toasts
            assert any(t == f"run {view.id} warn" and "D saturated" in m and s == "warning" for t, m, s in toasts)
            assert not any("old-news" in m for _, m, _ in toasts)  # history is not news
            assert app.bells >= 1

    asyncio.run(main())


def test_no_apprise_at_cli_start():
    """The CLI's startup path (and the store's checks) must not import apprise."""
    code = "import sys, tui.cli.main, store.checks, store.settings; print('apprise' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                         env={**os.environ}, timeout=60)
    assert out.stdout.strip() == "False", out.stderr
