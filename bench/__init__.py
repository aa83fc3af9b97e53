"""``make bench``: performance scenarios against a real ``kasal serve`` process.

Run ``python -m bench`` (all scenarios), ``python -m bench --quick`` (a smoke
run with small counts) or ``python -m bench --only write,list``. Results are
printed as a table and written to ``bench/results/latest.json``.

Adding a scenario = adding a function decorated with ``@scenario(...)`` from
``bench.registry`` to any module in this package (modules are discovered).
"""
