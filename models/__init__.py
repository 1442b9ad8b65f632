"""Example checkpoints and the scripts that build them."""
