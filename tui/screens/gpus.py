"""The GPU screen (`g` on the runs table): this node's GPUs, their memory and util, and the processes on each,
a ganmgr worker by its run id and name, anything else as another user's process. `ganmgr gpus` in the TUI.

A thread worker reads NVML and the store's running runs every REFRESH_S (engine/control/gpu_overview.py) and
posts the result; a node without an NVIDIA GPU gets one plain sentence.
"""

from __future__ import annotations

import time

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.message import Message
from textual.worker import get_current_worker

from engine.control import nvml
from engine.control.gpu_overview import NO_GPU, GpuRow, OurRun, overview
from tui.screens.base import GanmgrScreen
from tui.widgets.key_bar import KeyBar
from tui.widgets.quiet_static import QuietStatic

REFRESH_S = 2.0


class GpusScreen(GanmgrScreen[None]):
    BINDINGS = [
        Binding("escape,backspace,g", "back", "Back", id="gpus-back", tooltip="back to the runs table"),
        Binding("question_mark", "app.help", "Help", id="gpus-help", tooltip="this help"),
        Binding("q", "app.quit", "Quit", id="gpus-quit", tooltip="quit; runs keep going"),
    ]

    class Read(Message):
        def __init__(self, rows: list[GpuRow] | None, why: str = "") -> None:
            super().__init__()
            self.rows = rows
            self.why = why

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[GpuRow] | None = None
        self.why = ""
        self.reads = 0  # answers taken in (tests wait on it)

    def compose(self) -> ComposeResult:
        yield QuietStatic(" GPUs of this node", id="gpus-title")
        yield QuietStatic("reading NVML…", id="gpus-body")
        yield KeyBar()

    def on_mount(self) -> None:
        self.query_one("#gpus-body").border_title = "GPUs (NVML), their processes"
        self.poll()

    @work(thread=True, exclusive=True, group="gpus", exit_on_error=False, name="read GPUs")
    def poll(self) -> None:
        from store import runs as store_runs
        from store.location import db_path

        worker = get_current_worker()
        while not worker.is_cancelled:
            runs = store_runs.list_runs(self.home, status="running") if db_path(self.home).exists() else []
            ours = [OurRun(r.id, r.name, r.pid, r.pid_start) for r in runs if r.pid is not None]
            try:
                self.post_message(self.Read(overview(ours)))
            except nvml.NvmlUnavailable as e:
                self.post_message(self.Read(None, str(e)))
                return  # no GPU now is no GPU later: nothing to refresh
            for _ in range(int(REFRESH_S * 10)):
                if worker.is_cancelled:
                    return
                time.sleep(0.1)

    @on(Read)
    def _read(self, event: Read) -> None:
        self.rows, self.why = event.rows, event.why
        self.reads += 1
        self.query_one("#gpus-body", QuietStatic).show(self.text())

    def text(self) -> Text:
        t = Text()
        if self.rows is None:
            t.append(NO_GPU.format(why=self.why))
            return t
        if not self.rows:
            t.append("NVML answers but lists no GPU on this node")
        for row in self.rows:
            t.append(row.head() + "\n", style="bold")
            for p in row.processes:
                t.append("  " + p.text() + "\n", style="" if p.run_id is not None else "dim")
            if not row.processes:
                t.append("  no processes\n", style="dim")
        return t.rstrip() or t

    def action_back(self) -> None:
        self.dismiss(None)

