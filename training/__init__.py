"""Compact fine-tuning on a run's curated dataset, once its checks pass (docs/training.md).

``training.api.train(run_dir)`` is the entry point (``tuneprep train RUN``); ``data``
tokenises and packs, ``models`` loads and wraps, ``loop`` trains, ``dpo`` holds the
preference loss, ``outputs`` writes the model, metrics and card.
"""
