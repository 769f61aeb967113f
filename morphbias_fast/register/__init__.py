"""Generalizable INR registration: one network for the cohort, a latent per subject (docs/METHOD.md section 2).

config.py       INRConfig: architecture, loss weights, learning rates, budget
model.py        the hash-grid and SIREN networks u(x, z) with forward-mode du/dx
images.py       images and atlas as tensors; the voxel sampler and the paper's N(0, 0.4) coordinates
loss.py         similarity + displacement + latent + Jacobian-determinant terms
distributed.py  torchrun sharding (subject i on rank i % world)
train.py        training, then fitting latents with the network frozen (every subject; the paper: val/test)
decode.py       Decoder: latent -> field -> warped atlas (register, decode, mitigate); the `decode` command
refit.py        a finished run's training latents fitted again with the network frozen (paper recipe, issue 17)
quality.py      per-split image error, endpoint error, folds
stage.py        the `register` stage (Config, run, Result)
"""
from morphbias_fast.register.config import RECIPES, INRConfig
from morphbias_fast.register.decode import Decoder, decode_subject
from morphbias_fast.register.images import Images
from morphbias_fast.register.loss import det_identity_plus, patch_offsets, similarity
from morphbias_fast.register.model import build_model
from morphbias_fast.register.quality import split_metrics
from morphbias_fast.register.refit import refit_latents
from morphbias_fast.register.stage import Config, Result, run
from morphbias_fast.register.train import train_inr

__all__ = ["Config", "Result", "run", "INRConfig", "RECIPES", "Decoder", "decode_subject", "Images", "build_model",
           "det_identity_plus", "patch_offsets", "similarity", "split_metrics", "train_inr", "refit_latents"]
