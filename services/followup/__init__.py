"""The followup service."""
