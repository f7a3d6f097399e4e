"""Offload web: the signup form, the JSON API and the analytics middleware."""
