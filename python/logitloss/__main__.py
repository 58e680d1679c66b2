"""``python -m logitloss`` prints the build and runtime configuration."""

from . import show_config

show_config()
