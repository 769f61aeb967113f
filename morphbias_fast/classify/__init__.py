"""The disease classifier whose bias the pipeline detects and reduces (METHOD.md section 4)."""
from morphbias_fast.classify.model import CNN  # noqa: F401
from morphbias_fast.classify.train import TrainConfig, fit, predict_proba, run_classify  # noqa: F401
