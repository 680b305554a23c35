"""Chinese-language triage: explainable rules + a character n-gram model built by `tools.model`, blended;
pure domain code that only reads the built model (it never trains)."""

from shared.domain.classification.artefact import ModelError
from shared.domain.classification.classifier import Classifier
from shared.domain.classification.policy import Policy, PolicyError, load_policy

__all__ = ["Classifier", "ModelError", "Policy", "PolicyError", "load_policy"]
