"""Coverage-guided fuzzing (atheris / libFuzzer) of every parser that takes outside bytes (issue 16).

One harness per target under ``tests/fuzz/targets/``; ``python -m tests.fuzz.run`` runs them (see its docstring).
"""
