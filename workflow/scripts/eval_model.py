"""eval_model (stages 1, 2, 4, 5): lm-eval tasks under a mask policy -> metrics.json + samples."""
# placeholder until maskablate.evaluation lands
