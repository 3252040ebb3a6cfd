"""Models: the one loader of models and tokenizers, and the one generation engine
that decodes with them.

Modules: ``modeling`` (loading models and tokenizers, attention backends per device),
``generation`` (batched greedy decoding), ``decode_loop`` (the engine's own loop over a static
KV cache).
"""
