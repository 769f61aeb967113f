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
    load_classifier,
    predictions_frame,
    run,
    accuracy_summary,
    write_outputs,
)
from morphbias_fast.classify.train import (
    BN_STATS_IMAGES,
    TrainConfig,
    val_score,
    fit,
    predict_proba,
    recalibrate_batchnorm,
    standardise,
)

__all__ = ["CNN", "Config", "Result", "run", "TrainConfig", "fit", "predict_proba", "standardise",
           "recalibrate_batchnorm", "BN_STATS_IMAGES", "load_classifier", "predictions_frame", "write_outputs",
           "val_score", "accuracy_summary", "heldout_predictions"]
