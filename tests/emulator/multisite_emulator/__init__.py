"""multisite emulator: moto 5.2.5's server plus the DR behaviours moto lacks.

Used only by the project's tests and drill, never by production code. See
../README.md for the CLI, the control API and the AWS semantics followed.
"""

__all__ = ["__version__"]

__version__ = "0.1.0"
