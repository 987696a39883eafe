"""Anti-transfer learning in PyTorch (never imports mlflow, optuna or tensorflow).

Modules: ``vgg`` (VGG16 with a width option, registered variants), ``taps`` (where the AT
term looks), ``loss`` (aggregations and distances), ``config`` (the ``at.*`` spec section),
``init`` (weight initialisation that really loads), ``train`` (the training loop) and
``bench`` (step timing). Import the submodules directly; this package imports nothing so
that resolving a registry entry stays cheap.
"""
