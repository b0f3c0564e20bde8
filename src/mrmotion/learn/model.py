"""Loading the learned-correction networks (shipped in ``mrmotion/weights`` or trained with ``train-correct``)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from mrmotion.io.weights import read_weights
from mrmotion.learn.prior import CodePrior, PriorConfig
from mrmotion.learn.unet import UNet
from mrmotion.learn.vqvae import HierarchicalVQVAE, VQConfig

FILES = {"vqvae": "correct_vqvae.safetensors", "prior": "correct_prior.safetensors", "unet": "correct_unet.safetensors"}
_HINT = "mrmotion train-correct"


def weights_folder() -> Path:
    """The folder of the weights shipped with the package."""
    from importlib import resources

    return Path(str(resources.files("mrmotion") / "weights"))


def load_vqvae(path: str | Path) -> HierarchicalVQVAE:
    return read_weights(path, lambda c: HierarchicalVQVAE(VQConfig(**c["vq"])), "VQ-VAE", _HINT)[0]


def load_prior(path: str | Path) -> CodePrior:
    def build(config: dict) -> CodePrior:
        vq = VQConfig(**config["vq"])
        return CodePrior(PriorConfig(**config["prior"]), vq.top_codes, vq.bottom_codes)

    return read_weights(path, build, "code prior", _HINT)[0]


def load_unet(path: str | Path) -> UNet:
    return read_weights(path, lambda c: UNet(c["unet_width"]), "U-Net", _HINT)[0]


@dataclass
class CorrectionModel:
    """The VQ-VAE and its prior (the prior may be None: then only prior_strength 0 is possible)."""

    vqvae: HierarchicalVQVAE
    prior: CodePrior | None

    @classmethod
    def load(cls, folder: str | Path | None = None, with_prior: bool = True) -> CorrectionModel:
        folder = Path(folder) if folder is not None else weights_folder()
        prior = load_prior(folder / FILES["prior"]) if with_prior else None
        return cls(load_vqvae(folder / FILES["vqvae"]), prior)


_MODELS: dict[str, CorrectionModel] = {}


def default_model() -> CorrectionModel:
    """The shipped model, loaded once per process."""
    key = str(weights_folder())
    if key not in _MODELS:
        _MODELS[key] = CorrectionModel.load()
    return _MODELS[key]
