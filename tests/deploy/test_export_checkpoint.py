"""export_checkpoint end to end on a cry checkpoint with real calibration windows (the shared audio data)."""
from __future__ import annotations

import pytest

from camlab.errors import CamlabError, InputFileError


def _cry_checkpoint(path, **features):
    import torch

    from camlab.config import to_dict
    from camlab.contract.audio_features import FeatureConfig
    from camlab.models import cry
    from camlab.train.checkpoint import save_checkpoint

    torch.manual_seed(0)
    cfg = cry.CryModelConfig(features=FeatureConfig(**features))
    save_checkpoint(path, kind="cry", model_config=to_dict(cfg), state_dict=cry.build_model(cfg).state_dict(),
                    meta={})
    return path, cfg


def test_bad_checkpoints_are_clear_errors(tmp_path):
    from camlab.deploy.export import export_checkpoint

    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(InputFileError, match="bad.pt: not a readable camlab checkpoint"):
        export_checkpoint(bad, "rv1106", tmp_path)
    ckpt, _ = _cry_checkpoint(tmp_path / "c.pt")
    with pytest.raises(InputFileError, match="is a 'cry' model, expected 'detector'"):
        export_checkpoint(ckpt, "rv1106", tmp_path, kind="detector")
    with pytest.raises(CamlabError, match="unknown chip 'z80'"):
        export_checkpoint(ckpt, "z80", tmp_path)


@pytest.mark.slow
def test_cry_export_with_real_calibration_windows(shared_data, tmp_path, monkeypatch):
    from camlab.contract.manifest import load_bundle
    from camlab.deploy.export import export_checkpoint
    from camlab.models.cry import manifest_io

    monkeypatch.setenv("CAMLAB_CACHE", str(tmp_path / "cache"))
    # a 40 x 97 log-mel input breaks the "H and W multiples of 32" toolchain rule: refused before any work
    ckpt, _ = _cry_checkpoint(tmp_path / "c40.pt", n_mels=40, window_s=1.0)
    with pytest.raises(CamlabError, match=r"input shape \[1, 1, 40, 97\]: H and W must be multiples of 32"):
        export_checkpoint(ckpt, "rv1106", tmp_path / "exports", calib_count=8, evaluate=False, oracle=False,
                          register=False)
    ckpt, cfg = _cry_checkpoint(tmp_path / "c64.pt", n_mels=64, window_s=0.982)
    bundle = export_checkpoint(ckpt, "ssc377", tmp_path / "exports", calib_count=16, evaluate=False, oracle=False,
                               register=False)
    m = load_bundle(bundle).manifest
    io = manifest_io(cfg)
    assert m["inputs"] == io["inputs"] and m["features"] == io["features"] and m["decode"] == io["decode"]
    assert m["inputs"][0]["shape"] == [1, 1, 64, 96]
    assert m["quantization"]["calibration"]["count"] == 16
    assert "calibration_windows" in m["quantization"]["calibration"]["source"]
    assert m["chips"][0] == "ssc377"
    assert m["validation"]["ssc377"]["violations"] == 0 and m["validation"]["rv1106"]["violations"] == 0
    assert m["metrics"]["output_cosine"]["logits"] > 0.99
    assert m["provenance"]["checkpoint_sha256"] and m["provenance"]["mlflow_run_id"] is None


def test_cry_export_scores_the_validation_split_of_the_checkpoints_recipe(tmp_path, monkeypatch):
    """The export's FP32/INT8 F1 must be read on the clips the checkpoint's recipe held out (its data root, split
    fraction, seed and extra negatives, as recorded in the checkpoint), not on the default split: until 2026-12-07
    the release cry bundle (cry_music: 101 cry / 971 no-cry validation clips) was scored on the default 137."""
    import sys
    from pathlib import Path

    from camlab.data.audio import AudioDataConfig, index_for
    from camlab.deploy import export
    from camlab.eval import audio

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "data"))
    from test_audio import _synthetic_root

    monkeypatch.setenv("CAMLAB_CACHE", str(tmp_path / "cache"))
    root = _synthetic_root(tmp_path / "audio", n_cry=8, n_noise=10)
    seen = []

    def spy(bundle_dir, data_dir, variant="int8"):   # records the clips the evaluator was given
        d = Path(data_dir)
        seen.append({"cry": sum(1 for _ in (d / "cry").rglob("*") if _.is_symlink() or _.is_file()),
                     "nocry": sum(1 for _ in (d / "nocry").rglob("*") if _.is_symlink() or _.is_file())})
        return {"f1": 1.0, "precision": 1.0, "recall": 1.0, "n_cry": seen[-1]["cry"], "n_nocry": seen[-1]["nocry"]}

    monkeypatch.setattr(audio, "evaluate_bundle", spy)
    meta = {"train_config": {"data": {"root": str(root), "val_fraction": 0.4, "split_seed": 3}}}
    res = export.evaluator_for("cry", meta)(tmp_path, "fp32")
    idx = index_for(AudioDataConfig(root=str(root), val_fraction=0.4, split_seed=3))
    want = {"cry": sum(c.label for c in idx.val), "nocry": sum(1 - c.label for c in idx.val)}
    assert seen == [want] and res["split"]["count"] == want["cry"] + want["nocry"]
    assert str(root) in res["split"]["description"]
    meta["split"] = {"val": {"cry": want["cry"] + 1}}          # trained on other data than this root holds
    with pytest.raises(Exception, match="validation cries"):
        export.evaluator_for("cry", meta)(tmp_path, "fp32")
