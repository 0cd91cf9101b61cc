"""The staff console: server-rendered pages over the five services\x27 public APIs."""
