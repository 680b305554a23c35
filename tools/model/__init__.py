"""The classification model's build and evaluation: training happens here, never in a service."""
