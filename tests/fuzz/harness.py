"""One fuzz target under atheris: ``python -m tests.fuzz.harness TARGET [libFuzzer flags] [corpus dirs]``.

The parser must return or raise one of the target's documented errors; any other exception is a crash (atheris
prints the traceback and libFuzzer writes the input as ``crash-<sha1>``), a case running past ``-timeout`` is a
hang (``timeout-``), memory past ``-rss_limit_mb`` / the runner's RLIMIT_AS is an ``oom-`` (a MemoryError under the
address-space limit is an uncaught exception, i.e. a crash too).
"""
from __future__ import annotations

import logging
import sys

import atheris


def main() -> None:
    name = sys.argv[1]
    from tests.fuzz import targets
    mod = targets.load(name)
    logging.disable(logging.CRITICAL)          # the parsers' callers log every rejection
    with atheris.instrument_imports(include=list(mod.INSTRUMENT)):
        one, expected = mod.setup()

    def test_one_input(data: bytes) -> None:
        try:
            one(data)
        except expected:
            pass
        except Exception:
            raise
        except BaseException as exc:      # SystemExit, asyncio.CancelledError...: shown as a crash with its traceback
            raise RuntimeError(f"{type(exc).__name__} escaped the parser: {exc!r}") from exc

    atheris.Setup([sys.argv[0]] + sys.argv[2:], test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
