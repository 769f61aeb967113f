"""Cohorts: the synthetic cohort with a known morphological bias, and the reader every stage uses."""
from morphbias_fast.data.cohort import Cohort, load_cohort  # noqa: F401
