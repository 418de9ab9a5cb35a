"""Rankery: collect human feedback and turn it into aligned language models."""
