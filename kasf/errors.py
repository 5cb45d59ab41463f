"""kasf's own exception types: every failure a user can cause is one of these, with a message
that says what was wrong and what to do."""


class KasfError(Exception):
    """Base class of every error kasf raises on purpose."""


class InputError(KasfError, ValueError):
    """Keypoints or poses of the wrong shape, type or value."""


class ConfigError(KasfError, ValueError):
    """A model configuration that is malformed, unsupported or does not fit a checkpoint."""


class CheckpointError(KasfError):
    """A checkpoint file that cannot be read, is of an unknown kind, or does not fit the model."""


class DataError(KasfError):
    """A data file that is missing, malformed or inconsistent (the message names the key)."""
