"""One error hierarchy for the testbed: every failure a user can cause derives from TestbedError."""


class TestbedError(Exception):
    """Base class of every error the testbed raises on purpose."""


class ConfigError(TestbedError):
    """A scenario, radio or CLI value is invalid (the message names field, value and allowed)."""


class RadioError(TestbedError):
    """A radio backend cannot be loaded, found or configured."""


class ModelError(TestbedError):
    """A shipped model file is missing, corrupt or does not match its model card."""


class FrameError(TestbedError):
    """A frame cannot be built from the given payload (too long, bad modulation, ...)."""


class ProcessError(TestbedError):
    """A process of a multi-process run died or did not answer in time."""
