"""Jobs: one function per experiment kind, ``job(instance, run) -> final metrics``.

A job is the glue between a resolved spec instance, the data layer, the framework code
(``xferlab.v2s`` or ``xferlab.at``) and the open MLflow run (``xferlab.tracking``). It
loads data, builds models, passes ``run.log_epoch`` as the epoch callback, logs the
final metrics and writes the run's figures. It never imports mlflow itself.
"""
