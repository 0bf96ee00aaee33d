"""Hydra config groups of the runners (a package so ``pkg://runners.conf`` resolves when installed)."""
