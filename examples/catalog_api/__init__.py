"""An example consumer of pokervod-db: a small catalog API (see README.md here)."""
