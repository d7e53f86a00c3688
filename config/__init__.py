"""Ferryman's default configuration, shipped as package data (see default.yaml)."""
