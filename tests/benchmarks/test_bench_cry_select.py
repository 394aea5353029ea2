"""The cry release rule: mean validation F1 over seeds picks the recipe, the best validation seed within it."""
from __future__ import annotations

import pytest

from benchmarks.bench_cry_select import RECIPES, choose
from camlab.train.cry import load_train_config, recipe_checkpoint, seed_checkpoint


def _row(seed, f1, fa, deployable=True):
    return {"seed": seed, "f1": f1, "false_alarms": fa, "deployable": deployable}


def test_the_recipe_with_the_best_mean_wins_not_the_best_single_seed():
    rows = {"lucky": [_row(0, 0.95, 2), _row(1, 0.80, 2)],       # best single seed, worse mean
            "steady": [_row(0, 0.90, 3), _row(1, 0.89, 1)]}
    assert choose(rows) == {"recipe": "steady", "seed": 0, "mean_f1": pytest.approx(0.895),
                            "mean_false_alarms": 2.0, "passed_over": [], "ranked": {"recipe": "steady", "seed": 0},
                            "kept_release": None, "why": "release not among the scored checkpoints"}


def test_a_seed_outside_the_deployment_budgets_cannot_ship():
    """The INT8 bundle is what ships: the best validation seed is passed over when its bundle fails a budget."""
    rows = {"a": [_row(0, 0.95, 2, deployable=False), _row(1, 0.93, 2)],
            "b": [_row(0, 0.90, 2), _row(1, 0.90, 2)]}
    got = choose(rows)
    assert (got["recipe"], got["seed"]) == ("a", 1)
    assert got["mean_f1"] == pytest.approx(0.94)          # the recipe's mean still counts every seed
    assert got["passed_over"] == [{"recipe": "a", "seed": 0, "why": "outside the deployment budgets"}]


def test_a_recipe_with_no_deployable_seed_is_passed_over_and_none_ships_when_no_recipe_has_one():
    rows = {"a": [_row(0, 0.95, 2, deployable=False), _row(1, 0.93, 2, deployable=False)],
            "b": [_row(0, 0.90, 2), _row(1, 0.80, 2, deployable=False)]}
    got = choose(rows)
    assert (got["recipe"], got["seed"]) == ("b", 0)
    assert {"recipe": "a", "seed": None, "why": "no seed within the deployment budgets"} in got["passed_over"]
    none = {"a": [_row(0, 0.95, 2, deployable=False)], "b": [_row(0, 0.9, 1, deployable=False)]}
    assert choose(none)["recipe"] is None and choose(none)["seed"] is None


def test_the_pick_replaces_the_release_only_when_no_worse_on_f1_and_on_false_alarms():
    """Step 3: a recipe can win on its mean while its best seed is below the release checkpoint (2026-12-06:
    cry_cal seed 2, F1 0.934 and 10 false alarms, against the release's 0.941 and 7). The release then stays."""
    release = {"recipe": "music", "seed": 2}
    rows = {"music": [_row(0, 0.92, 9), _row(1, 0.90, 4), _row(2, 0.941, 7)],
            "cal": [_row(0, 0.917, 12), _row(1, 0.935, 7), _row(2, 0.934, 10)]}
    got = choose(rows, release)
    assert got["ranked"] == {"recipe": "cal", "seed": 1}
    assert (got["recipe"], got["seed"]) == ("music", 2) and got["kept_release"] is True
    assert "F1" in got["why"] and "false alarms" in got["why"]
    assert got["mean_f1"] == pytest.approx((0.92 + 0.90 + 0.941) / 3)
    better = {"music": rows["music"], "cal": [_row(0, 0.95, 5), _row(1, 0.94, 7), _row(2, 0.93, 9)]}
    got = choose(better, release)
    assert (got["recipe"], got["seed"]) == ("cal", 0) and got["kept_release"] is False
    fewer_alarms_only = {"music": rows["music"], "cal": [_row(0, 0.941, 3), _row(1, 0.90, 9), _row(2, 0.90, 9)]}
    assert choose(fewer_alarms_only, release)["kept_release"] is False      # equal F1, fewer alarms: ships
    more_alarms = {"music": rows["music"], "cal": [_row(0, 0.99, 8), _row(1, 0.99, 9), _row(2, 0.99, 9)]}
    assert choose(more_alarms, release)["kept_release"] is True             # better F1 cannot buy alarms


def test_without_the_release_among_the_rows_the_pick_is_not_compared():
    rows = {"a": [_row(0, 0.9, 1)], "b": [_row(0, 0.8, 1)]}
    got = choose(rows, {"recipe": "music", "seed": 2})
    assert (got["recipe"], got["seed"]) == ("a", 0) and got["kept_release"] is None
    assert choose(rows)["kept_release"] is None


def test_a_row_without_its_deployment_check_is_refused():
    with pytest.raises(ValueError, match="deployable"):
        choose({"a": [{"seed": 0, "f1": 0.9, "false_alarms": 1}]})


def test_ties_go_to_fewer_false_alarms_then_the_lower_seed():
    rows = {"a": [_row(0, 0.9, 4), _row(1, 0.9, 4)], "b": [_row(0, 0.9, 2), _row(1, 0.9, 2)]}
    assert choose(rows)["recipe"] == "b"
    assert choose(rows)["seed"] == 0
    rows = {"a": [_row(0, 0.9, 4), _row(1, 0.9, 1)]}
    assert choose(rows)["seed"] == 1


def test_a_recipe_subset_from_the_environment_writes_its_own_results():
    from benchmarks.bench_cry_select import DEFAULT_RECIPES, recipes_from_env

    assert recipes_from_env(None) == (DEFAULT_RECIPES, "cry_select")
    assert recipes_from_env("") == (DEFAULT_RECIPES, "cry_select")
    assert recipes_from_env("cry_music,cry_cal,cry_blend_cal")[1] == "cry_select_music_cal_blend_cal"
    assert recipes_from_env("cry_music, cry_blend") == (("cry_music", "cry_blend"), "cry_select_music_blend")
    for bad in ("cry_music", "cry_music,cry_music", "cry_music,cry_nope"):
        with pytest.raises(ValueError, match="CAMLAB_CRY_SELECT_RECIPES"):
            recipes_from_env(bad)


def test_a_malformed_environment_value_fails_this_bench_only_not_the_import(monkeypatch):
    """benchmarks.run imports every bench module: a bad CAMLAB_CRY_SELECT_* must not stop the others."""
    import importlib

    import benchmarks.bench_cry_select as mod

    monkeypatch.setenv("CAMLAB_CRY_SELECT_RECIPES", "cry_nope,cry_music")
    try:
        importlib.reload(mod)                               # no error at import
        with pytest.raises(ValueError, match="CAMLAB_CRY_SELECT_RECIPES"):
            mod.run()
    finally:
        monkeypatch.delenv("CAMLAB_CRY_SELECT_RECIPES")
        importlib.reload(mod)
    assert mod.NAME == "cry_select"


def test_seeds_from_the_environment():
    from benchmarks.bench_cry_select import seeds_from_env

    assert seeds_from_env(None) == (0, 1, 2) and seeds_from_env("2") == (2,) and seeds_from_env("1, 0") == (0, 1)
    for bad in ("x", "-1", ","):
        with pytest.raises(ValueError, match="CAMLAB_CRY_SELECT_SEEDS"):
            seeds_from_env(bad)


def test_recipes_scored_on_different_seeds_are_not_compared():
    with pytest.raises(ValueError, match="different seeds"):
        choose({"a": [_row(0, 0.9, 1), _row(1, 0.9, 1)], "b": [_row(0, 0.9, 1)]})
    with pytest.raises(ValueError, match="at least one"):
        choose({"a": [_row(0, 0.9, 1)], "b": []})


@pytest.mark.parametrize("recipe", RECIPES)
def test_seed_checkpoint_is_the_recipe_folder_for_its_own_seed_and_a_suffixed_one_otherwise(recipe):
    own = int(load_train_config(recipe).train.seed)
    assert seed_checkpoint(recipe, own) == recipe_checkpoint(recipe)
    other = seed_checkpoint(recipe, own + 5)
    assert other.name == "cry.pt"
    assert other.parent.name == f"{recipe_checkpoint(recipe).parent.name}_s{own + 5}"


def test_held_out_pooled_counts_each_group_once():
    from benchmarks.bench_cry_select import pooled_counts

    held = {"tuxpaint": {"speech": {"files": 10, "hours": 1.0, "false_alarms": 4},
                         "effects": {"files": 5, "hours": 0.1, "false_alarms": 11},
                         "pooled": {"false_alarms": 15, "hours": 1.1}},       # held_out_source's own sum
            "hedgewars": {"skipped": "not installed"}}
    assert pooled_counts(held) == {"tuxpaint": {"false_alarms": 15, "files": 15}}


def test_a_checkpoint_trained_with_another_seed_is_refused_with_its_path(tmp_path):
    from benchmarks.bench_cry_select import score_checkpoint
    from camlab.config import to_dict
    from camlab.models import cry
    from camlab.train.checkpoint import save_checkpoint

    cfg = cry.CryModelConfig()
    path = save_checkpoint(tmp_path / "cry.pt", kind="cry", model_config=to_dict(cfg),
                           state_dict=cry.build_model(cfg).state_dict(), meta={"train_config": {"train": {"seed": 1}}})
    with pytest.raises(RuntimeError, match=r"cry\.pt: trained with seed 1, expected seed 2"):
        score_checkpoint(path, 2, val=None, val_dir=tmp_path, yamnet=None)


def test_the_selection_refuses_to_run_on_the_demo_slice(tmp_path, monkeypatch):
    """A worktree without ../shared/data once ran this bench on the embedded demo audio (16 validation cries instead
    of 101) without a word: the release choice must come from the full data or not at all."""
    import benchmarks.bench_cry_select as mod
    from camlab import settings

    monkeypatch.delenv("CAMLAB_DATA", raising=False)
    monkeypatch.setattr(settings, "data_root", lambda: tmp_path / "no-data")
    with pytest.raises(ValueError, match="CAMLAB_DATA"):
        mod.run()


def test_an_unknown_bench_name_is_refused_before_anything_runs(monkeypatch, capsys):
    """``python -m benchmarks.run cry_select`` with CAMLAB_CRY_SELECT_RECIPES set names a bench that does not exist
    then (its name is cry_select_<recipes>): it used to run nothing and exit 0, which reads as a finished run."""
    import importlib

    import benchmarks.bench_cry_select as mod
    from benchmarks import run

    monkeypatch.setenv("CAMLAB_CRY_SELECT_RECIPES", "cry_music,cry_ema")
    try:
        importlib.reload(mod)
        assert mod.NAME == "cry_select_music_ema"
        assert run.main(["cry_select"]) == 2
        err = capsys.readouterr().err
        assert "no bench named cry_select" in err and "cry_select_music_ema" in err
    finally:
        monkeypatch.delenv("CAMLAB_CRY_SELECT_RECIPES")
        importlib.reload(mod)
