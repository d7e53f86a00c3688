"""The Textual app: screens, views and widgets. Never talks to Docker or Kubernetes directly."""
