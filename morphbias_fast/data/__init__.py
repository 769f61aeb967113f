"""Cohorts: the synthetic cohort with a known morphological bias, and the reader every stage uses."""
from morphbias_fast.data.cohort import Cohort, cohort_exists, load_cohort, read_nifti

__all__ = ["Cohort", "cohort_exists", "load_cohort", "read_nifti"]
