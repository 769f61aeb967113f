"""The disease classifier whose bias the pipeline detects and reduces (docs/METHOD.md section 4).

model.py  the paper's 5-layer CNN
train.py  training (model selection on val, BatchNorm statistics recomputed), prediction
stage.py  the `classify` stage (Config, run, Result) and the one writer of a classifier's files
heldout.py  cross-fitted train predictions of a finished classifier (the paper recipe's variants, issue 17)
"""
from morphbias_fast.classify.heldout import heldout_predictions
from morphbias_fast.classify.model import CNN
from morphbias_fast.classify.stage import (
    Config,
    Result,
    accuracy_summary,
    load_classifier,
    predictions_frame,
    run,
    write_outputs,
)
from morphbias_fast.classify.train import (
    BN_STATS_IMAGES,
    TrainConfig,
    config_record,
    fit,
    predict_proba,
    recalibrate_batchnorm,
    standardise,
    val_score,
)

__all__ = [
    "BN_STATS_IMAGES",
    "CNN",
    "Config",
    "Result",
    "TrainConfig",
    "accuracy_summary",
    "config_record",
    "fit",
    "heldout_predictions",
    "load_classifier",
    "predict_proba",
    "predictions_frame",
    "recalibrate_batchnorm",
    "run",
    "standardise",
    "val_score",
    "write_outputs",
]
