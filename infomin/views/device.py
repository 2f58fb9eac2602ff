"""Views made on the training device (``DATA.LOADER gpu``): workers read bytes, the device decodes
and augments whole batches.

The work is split in two halves of one :class:`~infomin.views.pipeline.MultiViewTransform`:

* :class:`EncodedViews` runs in the DataLoader workers. It draws every parameter exactly as the CPU
  pipeline does (the stages' own ``sample``, then ``draw_at_render`` for the draws RandAugment makes
  while rendering), from the same per-sample seeds, reading only the image size from the JPEG
  header; it ships the file's bytes with the parameters. Files that are not baseline RGB/grey JPEGs
  (PNG, CMYK JPEG, ...) are decoded here with PIL instead and shipped as pixels.
* :class:`DeviceViews` runs in the training process on the collated batch: one batched
  ``torchvision.io.decode_jpeg`` call (nvJPEG on CUDA), then each stage's ``render_batch`` with the
  shipped parameters, so the views equal the CPU pipeline's up to the per-op differences listed in
  docs/views.md. A batched decode that fails is retried image by image, then with PIL (the CPU
  pipeline's decoder); an image none can decode is reported in the batch's ``"bad"`` field and
  replaced through ``substitute`` as the CPU loader replaces it.
"""
from __future__ import annotations

import io
from collections.abc import Callable

import torch
from PIL import Image
from torch.utils.data import default_collate

from .pipeline import MultiViewTransform, open_image

__all__ = ["EncodedViews", "DeviceViews", "collate_encoded", "read_encoded", "decode_images"]

#: Modes nvJPEG / libjpeg decode straight to RGB; other JPEGs (CMYK, YCCK) are decoded by PIL.
_DEVICE_MODES = ("RGB", "L")


def _check_jpeg(data: bytes, name: str) -> None:
    """Cheap truncation check: the last scan must be followed by an end-of-image marker (what PIL
    reports as "image file is truncated" on the CPU path), so the worker can reject the file."""
    if not data.startswith(b"\xff\xd8"):
        raise OSError(f"{name}: not a JPEG stream (no start-of-image marker)")
    if data.rfind(b"\xff\xd9") < data.rfind(b"\xff\xda"):
        raise OSError(f"{name}: truncated JPEG (no end-of-image marker after the last scan)")


def read_encoded(img: Image.Image) -> torch.Tensor:
    """The bytes of a lazily opened JPEG (1-D uint8), or for other files the PIL-decoded RGB pixels
    ([3, H, W] uint8): what a worker ships for the device to decode."""
    if img.format == "JPEG" and img.mode in _DEVICE_MODES:
        name = getattr(img, "filename", "") or "image"
        if name and name != "image":
            with open(name, "rb") as f:
                data = f.read()
        else:
            img.fp.seek(0)
            data = img.fp.read()
        _check_jpeg(data, name)
        return torch.frombuffer(bytearray(data), dtype=torch.uint8)
    from .stages.normalize import uint8_chw

    return uint8_chw(img.convert("RGB"))


class EncodedViews:
    """Worker half: callable(lazily opened PIL image or path) -> {"encoded", "params"}.

    ``params`` = ([ViewParams per view], JigsawParams or None), with RandAugment's draws made.
    """

    def __init__(self, transform: MultiViewTransform):
        self.transform = transform

    def sample(self, img: Image.Image):
        """All of one image's parameters, drawn in the CPU pipeline's order (views and jigsaw from
        torch, then each view's render-time draws, view 1 first, as its rendering makes them)."""
        t = self.transform
        views = [t.sample_view(img) for _ in range(t.views)]
        jig = t.sample_jigsaw(img) if t.jigsaw is not None else None
        for v in views:
            for name, stage in t._stages:
                v.stages[name] = stage.draw_at_render(v.stages[name])
        return views, jig

    def __call__(self, source) -> dict:
        img = open_image(source)
        try:
            params = self.sample(img)
            return {"encoded": read_encoded(img), "params": params}
        finally:
            if img is not source:
                img.close()

    #: the DataLoader's collate_fn for datasets using this transform (see pretrain.data.build_loader)
    @staticmethod
    def collate_fn(batch: list[dict]) -> dict:
        return collate_encoded(batch)

    def __repr__(self):
        return f"{type(self).__name__}({self.transform!r})"


def collate_encoded(batch: list[dict]) -> dict:
    """Bytes and parameters stay per-sample lists (sizes differ); everything else default-collates."""
    keep = ("encoded", "params")
    out = default_collate([{k: v for k, v in s.items() if k not in keep} for s in batch])
    for k in keep:
        out[k] = [s[k] for s in batch]
    return out


def _decode_jpeg(data, device):
    from torchvision.io import ImageReadMode, decode_jpeg

    return decode_jpeg(data, mode=ImageReadMode.RGB, device=device)


def _decode_one(data: torch.Tensor, device) -> tuple[torch.Tensor | None, str]:
    """One image on the device, else with PIL (the CPU pipeline's decoder); (None, why) if neither."""
    try:
        return _decode_jpeg(data, device), ""
    except RuntimeError as e:
        device_error = f"{type(e).__name__}: {e}"
    try:
        with Image.open(io.BytesIO(data.numpy().tobytes())) as img:
            from .stages.normalize import uint8_chw

            return uint8_chw(img.convert("RGB")).to(device), ""
    except (OSError, SyntaxError, Image.DecompressionBombError) as e:
        return None, f"{device_error}; PIL: {type(e).__name__}: {e}"


def decode_images(encoded: list[torch.Tensor], device) -> tuple[list, list[str]]:
    """Decode a batch (1-D JPEG bytes, or [3, H, W] pixels decoded already) on ``device``.

    One batched call for all JPEGs; if it fails, image by image so one bad file costs only itself.
    Returns the [3, H, W] uint8 images (None where undecodable) and the reasons ("" when fine).
    """
    device = torch.device(device)
    images: list = [None] * len(encoded)
    errors = [""] * len(encoded)
    jpegs = [i for i, e in enumerate(encoded) if e.dim() == 1]
    for i, e in enumerate(encoded):
        if e.dim() == 3:
            images[i] = e.to(device, non_blocking=True)
    if jpegs:
        try:
            for i, img in zip(jpegs, _decode_jpeg([encoded[i] for i in jpegs], device)):
                images[i] = img
        except RuntimeError:
            for i in jpegs:
                images[i], errors[i] = _decode_one(encoded[i], device)
    return images, errors


class DeviceViews:
    """Device half: callable(collated batch from :class:`EncodedViews`) -> the batch with "view1"
    ["view2"] ["jigsaw"] on ``device`` in place of "encoded"/"params".

    ``substitute(index, attempt) -> (sample, bad lines)``: the dataset's replacement for the sample
    at ``index`` whose ``attempt``-th file (counted from index) could not be decoded, drawn with the
    same seed as the CPU loader's replacement (``RobustImageFolder.load``); ``None``: an undecodable
    image raises. ``describe(index, attempt)`` names the file in the report.
    """

    def __init__(self, transform: MultiViewTransform, device="cpu",
                 substitute: Callable | None = None, describe: Callable | None = None):
        self.transform = transform
        self.device = torch.device(device)
        self.substitute = substitute
        self.describe = describe or (lambda index, attempt: f"sample {index} (attempt {attempt})")

    def decode(self, data: dict) -> tuple[list, list, list[str]]:
        encoded, params = list(data["encoded"]), list(data["params"])
        images, errors = decode_images(encoded, self.device)
        bad: list[str] = []
        for j, why in enumerate(errors):
            index = int(data["index"][j])
            attempt = int(data["attempt"][j]) if "attempt" in data else 0
            while why:
                bad.append(f"{self.describe(index, attempt)} (decode failed: {why})")
                if self.substitute is None:
                    raise RuntimeError(f"could not decode {bad[-1]} and no dataset to replace it from")
                sample, skipped = self.substitute(index, attempt + 1)
                bad.extend(skipped)
                attempt = int(sample["attempt"])
                params[j] = sample["params"]
                (images[j],), (why,) = decode_images([sample["encoded"]], self.device)
                data["label"][j] = sample["label"]
        return images, params, bad

    def render(self, images: list, params: list) -> dict:
        """The views of decoded images from their parameters, batched stage by stage."""
        t = self.transform
        out = {}
        for k in range(t.views):
            p = [views[k] for views, _ in params]
            x = t._crop.render_batch(images, [q.box for q in p])
            x = t._flip.render_batch(x, [q.flip for q in p])
            for name, stage in t._stages:
                x = stage.render_batch(x, [q.stages[name] for q in p])
            out[f"view{k + 1}"] = t._normalize.render_batch(x)
        if t.jigsaw is not None:
            out["jigsaw"] = t._jigsaw.render_batch(images, [jig for _, jig in params])
        return out

    def __call__(self, data: dict) -> dict:
        if "encoded" not in data:
            raise ValueError("DeviceViews needs batches from EncodedViews workers (keys 'encoded', 'params'); "
                             "build the dataset with DATA.LOADER gpu")
        data = dict(data)
        images, params, bad = self.decode(data)
        out = {k: v for k, v in data.items() if k not in ("encoded", "params", "attempt")}
        out.update(self.render(images, params))
        if bad:
            out["bad"] = list(out.get("bad", [])) + bad
        return out

    def __repr__(self):
        return f"{type(self).__name__}({self.transform!r}, device={self.device})"
