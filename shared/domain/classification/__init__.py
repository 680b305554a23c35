"""Chinese-language triage: explainable rules + a character n-gram model, blended; pure domain code."""

from shared.domain.classification.classifier import Classifier
from shared.domain.classification.complaints import triage_many, triage_text
from shared.domain.classification.policy import Policy, PolicyError, load_policy

__all__ = ["Classifier", "Policy", "PolicyError", "load_policy", "triage_many", "triage_text"]
