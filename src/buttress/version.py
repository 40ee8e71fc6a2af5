"""The package version: one place, read by ``pyproject.toml`` (setuptools' dynamic version), the
CLI, journals and telemetry.  A leaf module, so any package may import it without a cycle."""

__all__ = ["__version__"]

__version__ = "0.1.0"
