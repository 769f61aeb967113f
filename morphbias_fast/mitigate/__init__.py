"""Mitigation (docs/METHOD.md sections 4 and 6): retrain on a re-weighted or INR-augmented train set.

strategies.py  the strategies, a registry: each returns a Plan (weights, latents to decode, val weighting)
augment.py     the latent arithmetic: the paper's noise + SMOTE, our counterfactual flip
stage.py       the `mitigate` stage (Config, run, Result): decode, retrain, write
"""
from morphbias_fast.mitigate.augment import paper_latents
from morphbias_fast.mitigate.stage import Config, Result, run
from morphbias_fast.mitigate.strategies import (
    DEFAULT,
    STRATEGIES,
    Inputs,
    Plan,
    Strategy,
    balanced_weights,
    oracle_weights,
    strategy,
)

__all__ = ["Config", "Result", "run", "DEFAULT", "STRATEGIES", "Inputs", "Plan", "Strategy", "strategy",
           "balanced_weights", "oracle_weights", "paper_latents"]
