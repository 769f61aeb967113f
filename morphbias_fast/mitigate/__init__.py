"""Mitigation (METHOD.md sections 4 and 6): retrain on a re-balanced or INR-augmented train set.

augment.py  latents -> images (frozen INR + atlas); the paper's noise + SMOTE, our counterfactual flip
stage.py    the `mitigate` command: strategies, retraining, predictions
"""
