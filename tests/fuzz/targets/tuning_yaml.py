"""ISP tuning YAML (``camlab/isp/tuning/*.yaml`` format): ``Pipeline.from_yaml`` -> typed PipelineConfig."""
from __future__ import annotations

INSTRUMENT = ("camlab.config", "camlab.isp.pipeline")


def setup():
    import atexit
    import os
    import tempfile

    from camlab.errors import ConfigError
    from camlab.isp.pipeline import Pipeline
    fd, path = tempfile.mkstemp(prefix="camlab-fuzz-", suffix=".yaml")
    os.close(fd)
    atexit.register(lambda: os.path.exists(path) and os.unlink(path))

    def one(data: bytes) -> None:
        with open(path, "wb") as fh:
            fh.write(data)
        Pipeline.from_yaml(path)
    return one, (ConfigError,)


def seeds() -> dict[str, bytes]:
    from camlab.isp.pipeline import TUNING_DIR
    out = {p.stem: p.read_bytes() for p in sorted(TUNING_DIR.glob("*.yaml"))}
    out["empty"] = b""
    out["bad-type"] = b"demosaic: 3\n"
    out["bad-yaml"] = b"a: [\n"
    return out
