"""The unbiased reference stage (Config, run, Result): the classifier trained at bias level 0.5."""
from morphbias_fast.unbiased.stage import Config, Result, run

__all__ = ["Config", "Result", "run"]
