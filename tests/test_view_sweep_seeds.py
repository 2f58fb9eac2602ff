"""`infomin-view-sweep --seeds`: the sweep per seed, reported per knob value as mean ± sample std.

Oracle: numpy's mean and std (ddof=1) of hand-made per-seed rows; the per-seed runs are a recording
fake of `view_sweep.sweep`, so the test checks what each seed's sweep is asked to do.
"""
import argparse
import csv

import numpy as np
import pytest

from infomin.pretrain import sweep_seeds
from infomin.pretrain.cli import view_sweep


def _rows(seed):
    acc = {0.1: [20.0, 24.0, 22.0], 0.5: [30.0, 33.0, 36.0], 1.0: [25.0, 21.0, 23.0]}
    mi = {0.1: [0.5, 0.7, 0.6], 0.5: [1.0, 1.2, 1.1], 1.0: [2.0, 2.2, 2.4]}
    return [{"knob": "crop_min", "value": v, "accuracy": acc[v][seed], "i_nce": mi[v][seed], "i_nce_std": 0.1}
            for v in (0.1, 0.5, 1.0)]


def test_aggregate_rows_is_numpys_mean_and_sample_std_per_value():
    per_seed = {s: _rows(s) for s in (0, 1, 2)}
    rows = sweep_seeds.aggregate_rows(per_seed)
    assert [r["value"] for r in rows] == [0.1, 0.5, 1.0]
    for r in rows:
        acc = [row["accuracy"] for s in per_seed for row in per_seed[s] if row["value"] == r["value"]]
        mi = [row["i_nce"] for s in per_seed for row in per_seed[s] if row["value"] == r["value"]]
        assert r["n"] == 3
        assert r["accuracy_mean"] == pytest.approx(np.mean(acc)) and r["accuracy_std"] == pytest.approx(np.std(acc, ddof=1))
        assert r["i_nce_mean"] == pytest.approx(np.mean(mi)) and r["i_nce_std"] == pytest.approx(np.std(mi, ddof=1))
        assert r["pretrain_i_nce_mean"] is None  # not measured: left empty, not zero


def test_sweep_seeds_runs_each_seed_in_its_folder_and_writes_the_mean_table(tmp_path):
    calls = []

    def fake_sweep(args):
        calls.append((args.seed, args.output_dir, list(args.opts), args.seeds))
        return _rows(args.seed)

    args = argparse.Namespace(seeds="0,1,2", seed=7, output_dir=str(tmp_path), opts=["SOLVER.EPOCHS", "2"],
                              knob="crop_min")
    rows = sweep_seeds.sweep_seeds(args, fake_sweep)
    assert calls == [(s, str(tmp_path / f"seed-{s}"), ["SOLVER.EPOCHS", "2", "SEED", str(s)], None)
                     for s in (0, 1, 2)]
    assert args.opts == ["SOLVER.EPOCHS", "2"] and args.seed == 7  # the caller's args are untouched
    with open(tmp_path / "sweep.csv") as f:
        table = list(csv.DictReader(f))
    assert [float(r["accuracy_mean"]) for r in table] == pytest.approx([r["accuracy_mean"] for r in rows])
    assert table[1]["accuracies"] == "30.00 33.00 36.00"
    assert (tmp_path / "sweep.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_bad_seeds_are_refused_by_the_command_line(capsys):
    for text, msg in (("0,0", "distinct"), ("x", "integers")):
        with pytest.raises(SystemExit) as exc:
            view_sweep.main(["--knob", "crop_min", "--values", "0.2", "--config-file",
                             "views/sweep_moco_R18_tiny.yaml", "--seeds", text])
        assert exc.value.code == 2
        err = capsys.readouterr().err
        assert msg in err and err.startswith("infomin-view-sweep: error:")
