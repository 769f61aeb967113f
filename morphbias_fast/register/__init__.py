"""Generalizable INR registration: one network for the cohort, a latent per subject (METHOD.md section 2)."""
from morphbias_fast.register.stage import load_registration, run_register  # noqa: F401
from morphbias_fast.register.train import RegisterConfig  # noqa: F401
