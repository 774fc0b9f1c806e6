"""The values the enumerated settings can take, in one light module (no torch), so that the recipe,
the pipeline, evaluation and the command line all read them from here."""

PRECISIONS = ("auto", "bf16", "fp32")
AUGMENTS = ("cifar", "imagenet", "flip", "none")
NORMALIZATIONS = ("pixel-mean", "channel", "none")
TEST_MODES = ("center", "ten-crop", "multi-scale")
OPTIMIZERS = ("sgd", "adamw")
SCHEDULES = ("step", "cosine", "onecycle", "plateau", "constant")
NAN_POLICIES = ("stop", "skip")
