"""Classic recommenders on the same splits and metrics as the SID models: most-popular, SASRec and
last-item transitions.

Run ``python -m sidreasoner.baselines {popularity,sasrec,transitions} --help``; each writes a run folder in the
evaluator's format (``predictions.jsonl``, ``metrics.json``, ``config.json``) for ``compare_results.py``.
"""
