"""Custom Lava processes. Lava executes every .py file in a process's folder when it
looks for models, so each folder here holds only import-safe files."""
