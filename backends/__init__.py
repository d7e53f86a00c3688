"""Async adapters to Docker Compose and Kubernetes and the domain model they share. No UI here."""
