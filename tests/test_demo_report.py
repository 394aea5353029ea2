"""The demo report's pieces, without running the demo: readable ISP tile titles, one unit per figure (percent for
AP, MiB for flash), and the PR/ROC/confusion plots a training run logged to MLflow embedded beside its tables."""
from __future__ import annotations

import pytest


def test_isp_tiles_have_readable_titles():
    from camlab.demo import ISP_TAP_TITLES, tap_title

    for name in ("blc", "dpc", "lsc", "wb", "demosaic", "ccm", "tone", "nr2d_y", "nr2d_uv", "sharpen_y", "main_y",
                 "sub_y"):
        title = tap_title(name)
        assert name in ISP_TAP_TITLES and "_" not in title and len(title.split()) >= 2, (name, title)
    assert tap_title("some_new_tap") == "some new tap"


def test_units_percent_and_mebibytes():
    from camlab.demo import mib, pct

    assert mib(8 * 2**20) == 8.0 and mib(8388608) == 8.0 and mib(None) is None   # not "8.389 MB"
    assert pct(0.0312) == 3.12 and pct(None) is None and pct(True) is None


def test_training_plots_logged_to_mlflow_are_embedded(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import mlflow

    from camlab import tracking
    from camlab.demo import mlflow_plots

    with tracking.run("test-demo-report", run_name="plots") as run:
        for path in ("plots/pr_curves.png", "plots/confusion_matrix.png", "figures/roc.png"):
            fig, ax = plt.subplots()
            ax.plot([0, 1], [1, 0])
            mlflow.log_figure(fig, path)
            plt.close(fig)
        mlflow.log_dict({"x": 1}, "plots/not_a_plot.json")
    figs = dict(mlflow_plots(run.info.run_id))
    assert set(figs) == {"precision-recall per class (IoU 0.5, from MLflow)", "confusion matrix (from MLflow)",
                         "ROC curve (from MLflow)"}
    assert all(png.startswith(b"\x89PNG") for png in figs.values())
    assert mlflow_plots(None) == []


@pytest.mark.parametrize("missing", ["0" * 32])
def test_a_missing_run_gives_no_plots_and_no_error(missing, capsys):
    from camlab.demo import mlflow_plots

    assert mlflow_plots(missing) == []
    assert "not embedded" in capsys.readouterr().out
