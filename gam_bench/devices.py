"""The device types gam-bench knows: the one list that suite files, profiles and the CLI's
`--device` accept (`auto` picks the accelerator if there is one, else cpu)."""

DEVICE_TYPES = ("cpu", "cuda", "mps", "xpu")
DEVICE_CHOICES = ("auto", *DEVICE_TYPES)
