"""Training: one loop for every model, resumable, and data-parallel under torchrun.

- ``loop.py``        the loop: steps, validation, checkpoints, early stopping, signals
- ``losses.py``      losses by name, chosen by the model's contract (binary-mask BCE/MSE, magnitude MSE/L1, MR-STFT)
- ``affinity.py``    the deep-clustering affinity loss (low-rank), for embeddings models
- ``fit.py``         the loop for models fitted without gradients (``trained_by = "fit"``)
- ``schedule.py``    warm-up then cosine / plateau / constant learning rate
- ``state.py``       resume state, RNG capture, last/last.prev/best checkpoints
- ``distributed.py`` torchrun/DDP set-up, device choice, rank helpers
- ``sampler.py``     the (resumable, sharded) data order
- ``setup.py``       building model, optimizer, AMP and data loaders for a run
- ``validate.py``    validation loss and full-track global SDR through the separation engine
- ``logging.py``     progress display, metrics.csv, TensorBoard, plots
- ``signals.py``     SIGINT/SIGTERM -> save and stop
- ``checks.py``      training-specific config checks

``stemsplit.pipelines.train.run_train`` is the entry point; the CLI calls it.
"""
