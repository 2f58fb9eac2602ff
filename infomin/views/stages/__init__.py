"""View stages (crop, flip, the photometric stages policies order, colour space/normalisation) and
their registry. Importing this package registers the built-in stages, in this order; see
docs/views.md ("Adding a stage") for how to add one."""
from .base import STAGES, Knob, Stage, StageRegistry, ViewContext, check_probability, fired
from . import crop, flip, jitter, blur, randaugment, grayscale, normalize  # noqa: E402,F401  (registers, in order)
from .jigsaw import JigsawParams, JigsawView, ReferenceJigsaw
from .randaugment import default_ra_ops

__all__ = ["STAGES", "Knob", "Stage", "StageRegistry", "ViewContext", "check_probability", "fired",
           "JigsawParams", "JigsawView", "ReferenceJigsaw", "default_ra_ops"]
