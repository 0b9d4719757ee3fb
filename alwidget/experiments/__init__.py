"""Experiments apart from the product: a simulated oracle labels what a session asks for.

- :mod:`.oracle`: the one oracle loop (balanced initial labels, then train, evaluate, query,
  label from the ground truth) and the round it reports.
- :mod:`.simulate`: ``simulate(pool, ...)``, the loop for a fixed number of rounds
  (``python -m alwidget simulate`` and ``demo``).
- :mod:`.bench`, :mod:`.bench_cli`, :mod:`.report`: the MNIST benchmark
  (``python -m alwidget bench``), its flags, and its tables and figures.
"""
