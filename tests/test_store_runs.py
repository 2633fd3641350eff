"""store.runs: the unit-of-work functions, on a real SQLite file per test."""

from __future__ import annotations

import dataclasses
import json
import multiprocessing as mp
import random
import sqlite3
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

import store.db as db
from store import StoreError
from store import queue as store_queue
from store import runs as R
from store import settings as store_settings
from store import viz_jobs as store_viz
from store.lifecycle import ACTIVE_STATUSES, STATUSES, TERMINAL_STATUSES
from store.views import RunView


@pytest.fixture
def home(tmp_path: Path):
    yield tmp_path / "home"
    db.dispose_engines()


def new(home: Path, name: str = "r", **kw) -> RunView:  # type: ignore[no-untyped-def]
    args = dict(
        name=name, recipe="acgan-wgangp", dataset="synthetic", config={"lr": 1e-4, "width": 16}, epochs=3
    )
    args.update(kw)
    return R.create_run(home, **args)


def count_rows(home: Path, table: str) -> int:
    raw = sqlite3.connect(db.db_path(home))
    try:
        return raw.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
    finally:
        raw.close()


# ------------------------------------------------------------------------------------ create


def test_create_run_returns_a_full_view_and_records_an_event(home: Path) -> None:
    seen: list[RunView] = []

    def prepare(view: RunView) -> str:
        seen.append(view)
        d = home / f"{view.id}-{view.name}"
        d.mkdir()
        return str(d)

    v = new(home, "first", tags="a, b,a", notes="hello", git_commit="abc123", prepare=prepare)
    assert v.id == seen[0].id == 1
    assert v.run_dir == str(home / "1-first") and seen[0].run_dir is None
    assert v.status == "queued" and v.kind == "train" and v.managed_by == "supervisor"
    assert v.config == {"lr": 1e-4, "width": 16}
    assert v.tags == ("a", "b") and v.notes == "hello" and v.git_commit == "abc123"
    assert v.epoch == 0 and v.step == 0 and v.progress == 0.0 and v.epochs == 3
    assert v.started_at is None and v.ended_at is None and v.created_at <= time.time()
    assert v.last_metrics == {} and v.cancel_requested is False
    assert R.get_run(home, v.id) == v
    assert [(e.status, e.message) for e in R.list_events(home, v.id)] == [("queued", "created")]


def test_create_run_with_a_failing_prepare_leaves_no_row(home: Path) -> None:
    new(home, "before")

    def prepare(view: RunView) -> str:
        raise ValueError("bad input")

    with pytest.raises(ValueError, match="bad input"):
        new(home, "doomed", prepare=prepare)
    assert [r.name for r in R.list_runs(home)] == ["before"]
    assert count_rows(home, "run_events") == 1
    assert new(home, "after").id == 2  # the rolled-back id was never handed out


def test_create_run_rejects_bad_inputs_without_a_row(home: Path) -> None:
    bad = [
        dict(name=""),
        dict(name="x" * 201),
        dict(name="a\x00b"),
        dict(epochs=-1),
        dict(epochs="3"),
        dict(priority=1.5),
        dict(status="completed"),
        dict(managed_by="cron"),
        dict(parent_id=42),
        dict(parent_relation="clone"),
        dict(config=[1, 2]),
        dict(config={"x": float("nan")}),
        dict(config={"x": object()}),
        dict(tags=["has space"]),
        dict(notes="bell\x07"),
    ]
    for kw in bad:
        with pytest.raises(StoreError):
            new(home, **{"name": "ok", **kw})
    assert R.list_runs(home) == []


def test_headless_run_starts_running(home: Path) -> None:
    v = new(home, managed_by="headless", status="running")
    assert v.status == "running" and v.started_at is not None and v.host
    # a headless run occupies no supervisor slot and is never claimed
    q = new(home, "queued")
    assert R.claim_next(home, host="h", slots=1).id == q.id


def test_parent_link_is_cleared_when_the_parent_is_deleted(home: Path) -> None:
    parent = new(home, "parent")
    R.set_status(home, parent.id, "completed")
    child = new(home, "child", parent_id=parent.id, parent_relation="fork", parent_epoch=2)
    assert (child.parent_id, child.parent_relation, child.parent_epoch) == (parent.id, "fork", 2)
    R.delete_run(home, parent.id)
    assert R.get_run(home, child.id).parent_id is None


# ------------------------------------------------------------------------------------ lookup


def test_find_run_by_id_or_name(home: Path) -> None:
    a = new(home, "alpha")
    b = new(home, "beta")
    new(home, "beta")
    named_7 = new(home, "7")
    assert R.find_run(home, str(a.id)) == a
    assert R.find_run(home, " alpha ").id == a.id
    assert R.find_run(home, a.id).id == a.id
    assert R.find_run(home, "7").id == named_7.id  # no run 7: falls back to the name
    with pytest.raises(StoreError, match=r"^no run 'gamma'$"):
        R.find_run(home, "gamma")
    with pytest.raises(StoreError, match=rf"ambiguous: ids {b.id}, {b.id + 1}"):
        R.find_run(home, "beta")
    with pytest.raises(StoreError) as info:
        R.find_run(home, "../x\x00" + "y" * 5000)
    assert "\n" not in str(info.value) and "\x00" not in str(info.value) and len(str(info.value)) < 120


def test_list_runs_filters_and_orders(home: Path) -> None:
    a = new(home, "Alpha-run", recipe="baseline", dataset="cifar10", notes="wide model")
    b = new(home, "beta", recipe="acgan-wgangp", tags=["night"])
    c = new(home, "gamma_1", recipe="acgan-wgangp")
    R.set_status(home, c.id, "running")
    assert [r.id for r in R.list_runs(home, status="queued")] == [a.id, b.id]
    assert [r.id for r in R.list_runs(home, status=["running", "queued"])] == [a.id, b.id, c.id]
    assert [r.id for r in R.list_runs(home, recipe="acgan-wgangp")] == [b.id, c.id]
    assert [r.id for r in R.list_runs(home, text="ALPHA")] == [a.id]
    assert [r.id for r in R.list_runs(home, text="CIFAR")] == [a.id]
    assert [r.id for r in R.list_runs(home, text="wide")] == [a.id]
    assert [r.id for r in R.list_runs(home, text="nig")] == [b.id]
    assert [r.id for r in R.list_runs(home, text="a_1")] == [c.id]  # "_" is literal, not a wildcard
    assert R.list_runs(home, text="a%1") == []
    assert [r.id for r in R.list_runs(home, order="-id")] == [c.id, b.id, a.id]
    assert [r.id for r in R.list_runs(home, order="-id", limit=2)] == [c.id, b.id]
    with pytest.raises(StoreError, match="unknown status"):
        R.list_runs(home, status="done")
    with pytest.raises(StoreError, match="unknown order"):
        R.list_runs(home, order="random")


def test_tags_match_exactly(home: Path) -> None:
    a = new(home, "a", tags=["a"])
    ab = new(home, "ab", tags=["ab", "x"])
    assert [r.id for r in R.list_runs(home, tag="a")] == [a.id]
    assert [r.id for r in R.list_runs(home, tag="ab")] == [ab.id]
    assert R.list_runs(home, tag="b") == []
    raw = sqlite3.connect(db.db_path(home))
    try:
        stored = dict(raw.execute("SELECT name, tags FROM runs").fetchall())
        assert stored == {"a": ",a,", "ab": ",ab,x,"}
        # the documented LIKE form matches exactly too
        assert raw.execute("SELECT name FROM runs WHERE tags LIKE '%,a,%'").fetchall() == [("a",)]
    finally:
        raw.close()
    assert R.add_tags(home, a.id, ["b", "a", "c,d"]).tags == ("a", "b", "c", "d")
    assert [r.id for r in R.list_runs(home, tag="b")] == [a.id]
    assert R.remove_tags(home, a.id, "a,c").tags == ("b", "d")
    assert R.remove_tags(home, ab.id, ["ab", "x"]).tags == ()
    assert R.get_run(home, ab.id).tags == ()
    with pytest.raises(StoreError, match="bad tag"):
        R.add_tags(home, a.id, ["with space"])
    with pytest.raises(StoreError, match="bad tag"):
        R.add_tags(home, a.id, ["x" * 65])


def test_notes(home: Path) -> None:
    v = new(home)
    assert R.set_notes(home, v.id, "line 1\nline 2\ttab").notes == "line 1\nline 2\ttab"
    with pytest.raises(StoreError):
        R.set_notes(home, v.id, "nul\x00")
    with pytest.raises(StoreError, match="no run 99"):
        R.set_notes(home, 99, "x")


# ------------------------------------------------------------------------------------- queue


def test_queue_order_is_priority_then_id(home: Path) -> None:
    ids = [new(home, f"r{i}", priority=p).id for i, p in enumerate([0, 5, 0, 5, -1, 1])]
    expected = [ids[1], ids[3], ids[5], ids[0], ids[2], ids[4]]
    assert [r.id for r in R.queued_in_order(home)] == expected
    assert [r.id for r in R.list_runs(home, order="queue")] == expected
    runs = [SimpleNamespace(id=i, priority=p) for i, p in [(3, 0), (1, 0), (2, 9)]]
    assert [r.id for r in store_queue.queue_order(runs)] == [2, 1, 3]
    # claiming follows the same order
    claimed = [R.claim_next(home, host="h", slots=99).id for _ in ids]
    assert claimed == expected
    assert R.claim_next(home, host="h", slots=99) is None


def test_claim_next_respects_slots(home: Path) -> None:
    ids = [new(home, f"r{i}").id for i in range(4)]
    first = R.claim_next(home, host="node1", slots=2)
    assert first.id == ids[0] and first.status == "running" and first.host == "node1" and first.started_at
    assert R.claim_next(home, host="node1", slots=2).id == ids[1]
    assert R.claim_next(home, host="node1", slots=2) is None
    assert R.claim_next(home, host="node1", slots=0) is None
    R.set_status(home, ids[0], "completed")
    assert R.claim_next(home, host="node1", slots=2).id == ids[2]
    assert R.claim_next(home, host="node1", slots=3).id == ids[3]
    events = R.list_events(home, ids[0])
    assert [e.status for e in events] == ["queued", "running", "completed"]
    assert "node1" in events[1].message


def test_a_held_slurm_sweep_is_claimed_only_once_released(home: Path) -> None:
    """`ganmgr sweep` holds a Slurm sweep's rows until the last exists, so a running supervisor sees all of
    them at once (one job array), never the first half."""
    slurm = dict(backend="slurm", managed_by="slurm", sweep="sw")
    held = [new(home, f"sw-{i}", held=True, **slurm).id for i in range(3)]
    other = new(home, "solo", backend="slurm", managed_by="slurm").id
    assert R.claim_next_slurm(home, host="n", sweep="sw") is None
    assert R.claim_next_slurm(home, host="n").id == other  # a held row never blocks other runs
    assert R.claim_next_slurm(home, host="n") is None
    assert R.release_sweep(home, "sw") == 3
    claimed = [R.claim_next_slurm(home, host="n", sweep="sw") for _ in range(4)]
    assert [c.id for c in claimed[:3]] == held and claimed[3] is None
    assert {c.cluster_state for c in claimed[:3]} == {"SUBMITTING"}
    assert R.release_sweep(home, "sw") == 0


def _claimer(home: str, go, out) -> None:  # type: ignore[no-untyped-def]
    """Child process: claim until the queue is empty; report every id claimed, or the error."""
    got: list[int] = []
    go.wait(30)
    try:
        while (v := R.claim_next(Path(home), host=mp.current_process().name, slots=10_000)) is not None:
            got.append(v.id)
        out.put(("ok", got))
    except Exception as exc:
        out.put((f"{type(exc).__name__}: {exc}", got))


def test_concurrent_claims_never_take_the_same_run(home: Path) -> None:
    ids = {new(home, f"r{i}", priority=i % 3).id for i in range(60)}
    db.dispose_engines()
    ctx = mp.get_context("spawn")
    go, out = ctx.Event(), ctx.Queue()
    procs = [ctx.Process(target=_claimer, args=(str(home), go, out), name=f"claimer{i}") for i in range(3)]
    for p in procs:
        p.start()
    time.sleep(0.5)
    go.set()
    results = [out.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(30)
    assert [status for status, _ in results] == ["ok"] * 3
    claimed = [i for _, got in results for i in got]
    assert len(claimed) == len(set(claimed)) == len(ids)
    assert set(claimed) == ids
    assert {r.status for r in R.list_runs(home)} == {"running"}
    # one "running" event per run: nobody claimed twice
    assert count_rows(home, "run_events") == 2 * len(ids)


@pytest.mark.parametrize("seed", range(6))
def test_move_in_queue_moves_exactly_one_run(home: Path, seed: int) -> None:
    rng = random.Random(seed)
    for i in range(7):
        new(home, f"r{i}", priority=rng.choice([0, 0, 1, 2]))
    running = new(home, "busy")
    R.set_status(home, running.id, "running")
    for _ in range(25):
        order = [r.id for r in R.queued_in_order(home)]
        run_id = rng.choice(order)
        delta = rng.choice([-3, -1, -1, 1, 1, 2, 10, -10])
        expected = list(order)
        i = expected.index(run_id)
        expected.pop(i)
        expected.insert(min(max(i + delta, 0), len(order) - 1), run_id)
        R.move_in_queue(home, run_id, delta)
        assert [r.id for r in R.queued_in_order(home)] == expected
    with pytest.raises(StoreError, match="only a queued run"):
        R.move_in_queue(home, running.id, -1)


def test_move_changes_only_the_moved_priority_when_it_can(home: Path) -> None:
    a, b, c = (new(home, n, priority=p) for n, p in [("a", 5), ("b", 3), ("c", 1)])
    moved = R.move_in_queue(home, c.id, -1)
    assert [r.id for r in R.queued_in_order(home)] == [a.id, c.id, b.id]
    assert moved.priority in (3, 4)
    assert {r.id: r.priority for r in R.queued_in_order(home) if r.id != c.id} == {a.id: 5, b.id: 3}


def test_set_priority(home: Path) -> None:
    a, b = new(home, "a"), new(home, "b")
    assert R.set_priority(home, b.id, 3).priority == 3
    assert [r.id for r in R.queued_in_order(home)] == [b.id, a.id]
    with pytest.raises(StoreError):
        R.set_priority(home, a.id, "high")  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------- statuses


def test_status_transitions_and_history(home: Path) -> None:
    v = new(home)
    with pytest.raises(StoreError, match="unknown status 'done'"):
        R.set_status(home, v.id, "done")
    with pytest.raises(StoreError, match="cannot set"):
        R.set_status(home, v.id, "running", name="renamed")
    r = R.mark_started(home, v.id, pid=4242, pid_start="12345", gpu="0")
    assert (r.status, r.pid, r.pid_start, r.gpu) == ("running", 4242, "12345", "0")
    assert r.started_at is not None and r.ended_at is None and r.host
    f = R.set_status(home, v.id, "failed", message="Traceback ...", error="ValueError: x", exit_code=1)
    assert (f.status, f.error, f.exit_code) == ("failed", "ValueError: x", 1)
    assert f.ended_at is not None and f.is_terminal and not f.is_active and f.duration_s is not None
    for status in STATUSES:  # terminal stays terminal, "queued" included
        with pytest.raises(StoreError, match=rf"^run {v.id} is already failed$"):
            R.set_status(home, v.id, status)
    with pytest.raises(StoreError, match="already failed"):
        R.mark_started(home, v.id, pid=1, pid_start="1")
    q = R.requeue(home, v.id, message="resume from epoch 1")
    assert q.status == "queued" and q.pid is None and q.ended_at is None and q.error is None
    assert q.exit_code is None and q.started_at is None and q.run_dir == f.run_dir
    with pytest.raises(StoreError, match="only a finished run can be requeued"):
        R.requeue(home, v.id, message="again")
    history = [(e.status, e.message) for e in R.list_events(home, v.id)]
    assert history == [
        ("queued", "created"),
        ("running", "worker pid 4242 started on GPU 0"),
        ("failed", "Traceback ..."),
        ("queued", "resume from epoch 1"),
    ]
    events = R.list_events(home, v.id)
    assert [e.at for e in events] == sorted(e.at for e in events)


def test_every_terminal_status_stamps_ended_at(home: Path) -> None:
    for status in sorted(TERMINAL_STATUSES):
        v = new(home, status)
        R.set_status(home, v.id, "running")
        done = R.set_status(home, v.id, status, signal=9 if status == "killed" else None)
        assert done.status == status and done.ended_at is not None and done.is_terminal
    assert TERMINAL_STATUSES | ACTIVE_STATUSES == set(STATUSES)


@pytest.mark.parametrize("status", STATUSES)
def test_request_cancel_in_each_status(home: Path, status: str) -> None:
    v = new(home)
    if status != "queued":
        R.set_status(home, v.id, "running")
    if status not in ("queued", "running"):
        R.set_status(home, v.id, status)
    if status == "queued":
        c = R.request_cancel(home, v.id)
        assert c.status == "cancelled" and c.ended_at is not None
        assert R.list_events(home, v.id)[-1].message == "cancelled while queued"
    elif status == "running":
        c = R.request_cancel(home, v.id)
        assert c.status == "running" and c.cancel_requested
        again = R.request_cancel(home, v.id)
        assert again.cancel_requested
        assert [e.message for e in R.list_events(home, v.id)].count("cancel requested") == 1
    else:
        with pytest.raises(StoreError, match=rf"^run {v.id} is already {status}$"):
            R.request_cancel(home, v.id)


def test_delete_run(home: Path) -> None:
    v = new(home)
    R.set_status(home, v.id, "running")
    with pytest.raises(StoreError, match="running"):
        R.delete_run(home, v.id)
    assert R.get_run(home, v.id) is not None
    R.add_artifact(home, v.id, "samples", "samples/epoch_001.png", epoch=1)
    store_viz.create_viz_job(home, run_id=v.id, kind="class_max", params={})
    R.set_status(home, v.id, "completed")
    gone = R.delete_run(home, v.id)
    assert gone.id == v.id and gone.status == "completed"
    assert R.get_run(home, v.id) is None
    assert (
        count_rows(home, "run_events") == count_rows(home, "artifacts") == count_rows(home, "viz_jobs") == 0
    )
    with pytest.raises(StoreError, match=f"no run {v.id}"):
        R.delete_run(home, v.id)
    assert new(home, "next").id == v.id + 1  # AUTOINCREMENT: a deleted id is never reused


def test_delete_refuses_a_run_with_a_running_viz_job(home: Path) -> None:
    v = new(home)
    R.set_status(home, v.id, "completed")
    store_viz.create_viz_job(home, run_id=v.id, kind="perturb", params={})
    store_viz.claim_next_viz(home, host="h", slots=1)
    with pytest.raises(StoreError, match="visualization"):
        R.delete_run(home, v.id)


# ---------------------------------------------------------------------------------- progress


def test_update_progress(home: Path) -> None:
    v = new(home)
    R.update_progress(home, v.id, epoch=1, step=10, progress=0.5, last_test_acc=40.0, images_per_s=1234.5)
    R.update_progress(home, v.id, last_test_acc=55.0, last_metrics={"gp": 0.1, "acc": 12.5})
    R.update_progress(home, v.id, last_test_acc=50.0, progress=7, metrics_offset=1024)
    r = R.get_run(home, v.id)
    assert (r.epoch, r.step, r.images_per_s, r.metrics_offset) == (1, 10, 1234.5, 1024)
    assert r.last_test_acc == 50.0 and r.best_test_acc == 55.0  # best is the running maximum
    assert r.progress == 1.0  # clamped
    assert r.last_metrics == {"gp": 0.1, "acc": 12.5}
    assert r.updated_at >= v.updated_at
    R.update_progress(home, v.id, best_test_acc=1.0)  # explicit wins
    assert R.get_run(home, v.id).best_test_acc == 1.0
    with pytest.raises(StoreError, match="cannot set 'status'"):
        R.update_progress(home, v.id, status="completed")
    with pytest.raises(StoreError, match="no run 999"):
        R.update_progress(home, 999, step=1)
    with pytest.raises(StoreError):
        R.update_progress(home, v.id, progress=float("nan"))


# --------------------------------------------------------------------------------- artifacts


def test_artifacts_are_idempotent_and_relative(home: Path) -> None:
    v = new(home)
    a1 = R.add_artifact(home, v.id, "checkpoint", "checkpoints/last.pt", epoch=1)
    a2 = R.add_artifact(home, v.id, "checkpoint", "checkpoints/last.pt", epoch=2)
    R.add_artifact(home, v.id, "samples", "samples/epoch_001.png", epoch=1)
    assert a1.id == a2.id and a2.epoch == 2
    assert [(a.kind, a.path, a.epoch) for a in R.list_artifacts(home, v.id)] == [
        ("checkpoint", "checkpoints/last.pt", 2),
        ("samples", "samples/epoch_001.png", 1),
    ]
    assert [a.path for a in R.list_artifacts(home, v.id, kind="samples")] == ["samples/epoch_001.png"]
    for bad in ["/etc/passwd", "../x.png", "a/../../b", "", "a\x00b"]:
        with pytest.raises(StoreError):
            R.add_artifact(home, v.id, "samples", bad)
    with pytest.raises(StoreError, match="no run 77"):
        R.add_artifact(home, 77, "samples", "x.png")


# ---------------------------------------------------------------------------------- viz jobs


def test_viz_jobs(home: Path, tmp_path: Path) -> None:
    v = new(home)
    R.set_status(home, v.id, "completed")
    j1 = store_viz.create_viz_job(
        home,
        run_id=v.id,
        kind="perturb",
        params={"n": 10},
        checkpoint="checkpoints/last.pt",
        prepare=lambda job: str(tmp_path / f"viz{job.id}"),
    )
    j2 = store_viz.create_viz_job(home, run_id=v.id, kind="class_max", params={}, priority=5)
    assert j1.params == {"n": 10} and j1.outputs == () and j1.job_dir == str(tmp_path / "viz1")
    with pytest.raises(StoreError, match="no run 50"):
        store_viz.create_viz_job(home, run_id=50, kind="perturb", params={})
    with pytest.raises(ZeroDivisionError):
        store_viz.create_viz_job(home, run_id=v.id, kind="perturb", params={}, prepare=lambda job: 1 / 0)  # type: ignore
    assert count_rows(home, "viz_jobs") == 2
    assert [j.id for j in store_viz.list_viz_jobs(home)] == [j1.id, j2.id]
    c = store_viz.claim_next_viz(home, host="h", slots=1)
    assert c.id == j2.id and c.status == "running"
    assert store_viz.claim_next_viz(home, host="h", slots=1) is None
    done = store_viz.set_viz_status(home, j2.id, "completed", outputs=["viz/2/a.png"], exit_code=0)
    assert done.outputs == ("viz/2/a.png",) and done.ended_at is not None
    with pytest.raises(StoreError, match="already completed"):
        store_viz.set_viz_status(home, j2.id, "running")
    with pytest.raises(StoreError, match="cannot set"):
        store_viz.set_viz_status(home, j1.id, "running", kind="x")
    assert [j.id for j in store_viz.list_viz_jobs(home, run_id=v.id, status="queued")] == [j1.id]
    cancelled = store_viz.request_cancel_viz(home, j1.id)
    assert cancelled.status == "cancelled"
    assert store_viz.get_viz_job(home, j1.id).status == "cancelled"
    assert store_viz.get_viz_job(home, 99) is None


# ---------------------------------------------------------------------------------- settings


def test_settings_defaults_and_validation(home: Path) -> None:
    assert store_settings.get_settings(home) == {"max_concurrent": 1, "gpus": []}
    assert store_settings.set_setting(home, "max_concurrent", 3)["max_concurrent"] == 3
    assert store_settings.set_setting(home, "gpus", [0, 2])["gpus"] == [0, 2]
    assert store_settings.get_settings(home) == {"max_concurrent": 3, "gpus": [0, 2]}
    for value in [0, 65, -1, "2", 1.5, True, None]:
        with pytest.raises(StoreError, match="max_concurrent"):
            store_settings.set_setting(home, "max_concurrent", value)
    for value in [[-1], ["0"], [True], "0,1", [0, 0], [1.0], None]:
        with pytest.raises(StoreError, match="gpus"):
            store_settings.set_setting(home, "gpus", value)
    with pytest.raises(StoreError):
        store_settings.set_setting(home, "Bad Key", 1)
    with pytest.raises(StoreError):
        store_settings.set_setting(home, "other", {1, 2})
    assert store_settings.get_settings(home) == {"max_concurrent": 3, "gpus": [0, 2]}
    store_settings.get_settings(home)["gpus"].append(5)  # the defaults are copied, never shared
    assert store_settings.get_settings(home)["gpus"] == [0, 2]


# ------------------------------------------------------------------------------------- views


def test_views_are_frozen_and_parsed(home: Path) -> None:
    v = new(home, tags=["x", "y"])
    with pytest.raises(dataclasses.FrozenInstanceError):
        v.status = "running"  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        R.list_events(home, v.id)[0].message = "x"  # type: ignore[misc]
    assert isinstance(v.config, dict) and v.config["width"] == 16
    assert v.tags == ("x", "y") and v.is_active and not v.is_terminal and v.duration_s is None
    d = v.to_dict()
    assert json.loads(json.dumps(d)) == d and d["tags"] == ["x", "y"] and d["config"] == v.config
    assert {"id", "name", "recipe", "status", "pid", "epoch", "run_dir"} <= set(d)
    columns = {c.name for c in __import__("store.tables", fromlist=["Run"]).Run.__table__.columns}
    renamed = {"config_json": "config", "last_metrics_json": "last_metrics", "backend_options_json": "backend_options"}
    assert {renamed.get(c, c) for c in columns} == {f.name for f in dataclasses.fields(RunView)}
