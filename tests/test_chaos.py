"""The chaos campaign (bench/chaos.py) and the soak (bench/soak.py), short and seeded, as tests.

One try of each scenario (the seed is the chaos seed: GANMGR_CHAOS_SEED reproduces a failure) must lose
nothing; the soak's 20 tiny runs must all complete through one supervisor, with no descriptor leaked and no
child left unreaped. The long versions, and their figures, are `python -m bench.chaos` and
`python -m bench.soak` (docs/reliability.md).
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from bench import chaos, soak


@pytest.mark.slow
@pytest.mark.parametrize("scenario", list(chaos.SCENARIOS))
def test_chaos_scenario_loses_nothing(scenario: str, tmp_path: Path, chaos_rng: random.Random):
    seed = chaos_rng.randrange(1 << 30)
    [line] = chaos.campaign([scenario], seed=seed, tries=1, base=tmp_path)
    if line.get("skipped"):
        pytest.skip(f"{scenario}: {line['skipped']}")
    assert line["tried"] == 1 and line["lost"] == 0, line


@pytest.mark.slow
def test_soak_of_20_runs_through_one_supervisor(tmp_path: Path):
    r = soak.soak(20, base=tmp_path)
    assert r["completed"] == 20 and r["supervisors"] == 1, r
    assert r["fds_end"] <= r["fds_start"] + 2, r  # a descriptor per run would show as +20
    assert r["zombies_lingering"] == 0, r
