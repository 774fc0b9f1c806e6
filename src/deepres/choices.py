"""The values the enumerated settings can take, in one light module (no torch), so that the recipe,
the pipeline, evaluation and the command line all read them from here."""

PRECISIONS = ("auto", "bf16", "fp32")
AUGMENTS = ("cifar", "imagenet", "flip", "none")
FLIPS = ("random", "alternate")
# The augmentations whose flip ``flip = "alternate"`` can alternate (their flip is done in the batch
# pipeline; ImageNet-style crops may be done by the streaming workers).
ALTERNATING_AUGMENTS = ("cifar", "flip")
NORMALIZATIONS = ("pixel-mean", "channel", "none")
TEST_MODES = ("center", "ten-crop", "multi-scale")
OPTIMIZERS = ("sgd", "adamw")
SCHEDULES = ("step", "cosine", "onecycle", "plateau", "constant")
NAN_POLICIES = ("stop", "skip")
