"""Progress output: tqdm bars on a terminal, one summary line per pass in a log file (stdout/stderr not a TTY)."""
from __future__ import annotations

import io
import subprocess
import sys

from camlab.train.common import progress


def test_not_a_tty_gives_one_line_per_pass():
    log = io.StringIO()
    bar = progress(range(5), desc="epoch 1/3", file=log)
    for i in bar:
        bar.set_postfix(loss=f"{0.5 / (i + 1):.3f}")
    assert "\r" not in log.getvalue()
    lines = log.getvalue().splitlines()
    assert len(lines) == 1 and lines[0].startswith("epoch 1/3: 5 in ") and lines[0].endswith("s (loss=0.100)")


def test_a_pass_cut_short_says_how_far_it_got():
    log = io.StringIO()
    for i in progress(iter(range(10)), desc="render", total=10, file=log):
        if i == 3:
            break
    assert log.getvalue().startswith("render: 3/10 in ")


def test_disabled_prints_nothing():
    log = io.StringIO()
    assert list(progress(range(3), desc="x", enabled=False, file=log)) == [0, 1, 2]
    assert log.getvalue() == ""


def test_a_captured_process_log_has_no_carriage_returns():
    code = ("from camlab.train.common import progress\n"
            "for e in range(3):\n"
            "    bar = progress(range(200), desc=f'epoch {e + 1}/3')\n"
            "    for _ in bar: bar.set_postfix(loss='0.1')\n")
    # bytes: text=True would translate the carriage returns this test looks for into newlines
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert b"\r" not in proc.stderr and len(proc.stderr.splitlines()) == 3


def test_third_party_bars_are_off_when_the_cli_logs_to_a_file():
    code = ("from camlab import cli\n"
            "cli.quiet_progress_when_logged()\n"
            "from tqdm.auto import tqdm\n"
            "list(tqdm(range(300), desc='clips', leave=False))\n")
    env = {k: v for k, v in __import__("os").environ.items() if k != "TQDM_DISABLE"}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=60, env=env)
    assert proc.returncode == 0 and proc.stderr == b"", proc.stderr


def test_an_imported_ipykernel_is_not_a_notebook():
    """The full suite imports ipykernel (notebook tests); that alone must not switch log output to tqdm bars."""
    import ipykernel  # noqa: F401

    log = io.StringIO()
    for _ in progress(range(3), desc="pass", file=log):
        pass
    assert "\r" not in log.getvalue() and log.getvalue().startswith("pass: 3 in ")
