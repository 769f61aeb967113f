"""The one path from a latent to a field and an image: the frozen INR decodes latents into displacement fields
on the atlas grid, and the atlas warped by a field is the model's picture of that subject. Used by the
register stage's metrics, the `decode` command and mitigation's generated images."""
from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import SimpleITK as sitk
import torch
from tqdm import tqdm

from morphbias_fast.data import deform, fields, read_nifti
from morphbias_fast.errors import MorphbiasError
from morphbias_fast.files import atomic_path
from morphbias_fast.register.model import build_model
from morphbias_fast.runfolder import RegisterFolder


class Decoder:
    """A trained registration network and the atlas [1, 1, *shape] it warps (on the network's device)."""

    def __init__(self, model, atlas: torch.Tensor):
        self.model = model
        self.atlas = atlas
        self.shape = tuple(atlas.shape[2:])

    @classmethod
    def load(cls, files: RegisterFolder, device="cpu") -> "Decoder":
        """The network of a finished register stage (model.pt) and its atlas copy, in eval mode on `device`."""
        files.require()
        ckpt = torch.load(files.model, map_location=device, weights_only=False)
        model = build_model(ckpt["arch"], ckpt["dim"], ckpt["latent_dim"]).to(device)
        model.load_state_dict(ckpt["model"])
        model.eval()
        atlas = read_nifti(files.atlas)[0]
        return cls(model, torch.as_tensor(atlas, device=device)[None, None])

    @property
    def device(self) -> torch.device:
        return self.atlas.device

    @torch.no_grad()
    def fields(self, z: torch.Tensor, chunk: int = 65536) -> torch.Tensor:
        """u [B, D, *shape] in voxel units on the full grid for latents z [B, K]."""
        shape, device = self.shape, z.device
        grids = torch.meshgrid(*[torch.arange(n, device=device, dtype=torch.float32) for n in shape], indexing="ij")
        vox = torch.stack(grids, -1).reshape(-1, len(shape))
        x = vox / torch.tensor([max(n - 1, 1) for n in shape], device=device)
        out = []
        for lo in range(0, x.shape[0], chunk):
            xs = x[lo: lo + chunk]
            u, _ = self.model(xs.expand(len(z), *xs.shape), z)
            out.append(u)
        u = torch.cat(out, 1)  # [B, V, D]
        return u.permute(0, 2, 1).reshape(len(z), len(shape), *shape)

    @torch.no_grad()
    def warp(self, u: torch.Tensor) -> torch.Tensor:
        """The atlas warped by fields u [B, D, *shape] -> [B, *shape]."""
        return deform.warp(self.atlas, u)[:, 0]

    def images(self, Z: np.ndarray, batch: int = 64, progress: bool = True) -> np.ndarray:
        """Atlas warped by the decoded field of each latent: [len(Z), *shape] float32."""
        out = []
        for lo in tqdm(range(0, len(Z), batch), desc="decode", unit="batch", disable=not progress):
            z = torch.as_tensor(np.asarray(Z[lo: lo + batch], dtype=np.float32), device=self.device)
            out.append(self.warp(self.fields(z)).cpu().numpy())
        return np.concatenate(out) if out else np.zeros((0, *self.shape), np.float32)


    def transported(self, images: np.ndarray, Z_from: np.ndarray, Z_to: np.ndarray, batch: int = 64,
                    progress: bool = True) -> np.ndarray:
        """Each image moved from the anatomy of its latent in Z_from to that of Z_to (deform.transport):
        [len(images), *shape] float32."""
        out = []
        for lo in tqdm(range(0, len(images), batch), desc="transport", unit="batch", disable=not progress):
            z = [torch.as_tensor(np.asarray(Z[lo: lo + batch], dtype=np.float32), device=self.device)
                 for Z in (Z_from, Z_to)]
            img = torch.as_tensor(np.asarray(images[lo: lo + batch], dtype=np.float32), device=self.device)
            with torch.no_grad():
                out.append(deform.transport(img, self.fields(z[0]), self.fields(z[1])).cpu().numpy())
        return np.concatenate(out) if out else np.zeros((0, *self.shape), np.float32)


def decode_subject(files: RegisterFolder, subject: str, out_dir: Path, warped: bool = False,
                   h5: bool = False) -> list[Path]:
    """Write one subject's displacement field (ITK convention, vector NIfTI) into `out_dir` and, when asked,
    the atlas warped by it and the field as an ITK transform file (.h5). Returns the paths written."""
    decoder = Decoder.load(files)
    latents = files.read_latents()
    if subject not in latents:
        raise MorphbiasError(f"subject {subject} is not in {files.latents}")
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise MorphbiasError(f"--out {out_dir} is a file: decode writes into a folder")
    out_dir.mkdir(parents=True, exist_ok=True)
    u = decoder.fields(torch.as_tensor(latents[subject])[None])
    field = fields.to_itk(u[0].numpy(), fields.read_grid(files.atlas))
    written = [out_dir / f"{subject}_desc-displacement_xfm.nii.gz"]
    atlas = nib.load(str(files.atlas))
    with atomic_path(written[-1]) as tmp:
        fields.write(field, tmp, z_mm=float(atlas.affine[2, 3]))
    if h5:
        written.append(out_dir / f"{subject}_desc-displacement_xfm.h5")
        with atomic_path(written[-1]) as tmp:
            sitk.WriteTransform(sitk.DisplacementFieldTransform(sitk.Cast(field, sitk.sitkVectorFloat64)), str(tmp))
    if warped:
        written.append(out_dir / f"{subject}_desc-warped_T1w.nii.gz")
        with atomic_path(written[-1]) as tmp:
            image = decoder.warp(u)[0].numpy().reshape(atlas.shape)  # a 2-D slice keeps the atlas's single slice
            nib.save(nib.Nifti1Image(image, atlas.affine, atlas.header), str(tmp))
    return written
