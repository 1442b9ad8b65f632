"""Target emitters: each backend turns a compiled IR into an artifact it can run."""
